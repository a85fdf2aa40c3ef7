-- A deployment's status and times stay as they ended: a release replaced by a later one records
-- that on the release (retiredAt). Services get the path a release must answer on to be healthy.
ALTER TABLE "Release" ADD COLUMN "retiredAt" TIMESTAMP(3);

-- Set when the registry pruned the release's image (only the newest releases' are kept).
ALTER TABLE "Release" ADD COLUMN "imagePrunedAt" TIMESTAMP(3);

ALTER TABLE "Service" ADD COLUMN "healthCheckPath" TEXT;

-- Releases retired before this change: their deployment was rewritten to "superseded" then.
UPDATE "Release" SET "retiredAt" = (
    SELECT "finishedAt" FROM "Deployment" WHERE "Deployment"."id" = "Release"."deploymentId"
) WHERE "deploymentId" IN (SELECT "id" FROM "Deployment" WHERE "status" = 'superseded');
