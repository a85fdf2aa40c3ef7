-- Databases in one call (issue 11): each resource gets a Pulumi stack of its own, a reason when
-- provisioning fails, and a credential version that rotation bumps.
ALTER TABLE "Resource" ADD COLUMN "stackName" TEXT;
ALTER TABLE "Resource" ADD COLUMN "statusReason" TEXT;
ALTER TABLE "Resource" ADD COLUMN "credentialVersion" INTEGER NOT NULL DEFAULT 1;

CREATE UNIQUE INDEX "Resource_stackName_key" ON "Resource"("stackName");
