-- The stack runner's copy of each tenant-stack update and the state it left (secrets as keyed
-- fingerprints), for audits on any Pulumi backend and of removed stacks.
CREATE TABLE "StackUpdate" (
    "id" TEXT NOT NULL,
    "stackName" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "result" TEXT NOT NULL,
    "startTime" TIMESTAMP(3) NOT NULL,
    "endTime" TIMESTAMP(3),
    "resourceChanges" TEXT NOT NULL,
    "state" TEXT,
    "recordedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "StackUpdate_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "StackUpdate_stackName_startTime_idx" ON "StackUpdate"("stackName", "startTime");
