-- A service's hostname label, unique among live services (NULL once deleted; existing rows get
-- theirs at their next deploy). SQLite has no ADD CONSTRAINT: a unique index does the job on both.
ALTER TABLE "Service" ADD COLUMN "hostLabel" TEXT;

CREATE UNIQUE INDEX "Service_hostLabel_key" ON "Service"("hostLabel");
