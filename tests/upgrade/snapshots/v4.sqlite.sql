-- A tallyfy-scheduler store at schema version 4, with data in it.
-- Written by tests/upgrade/make_snapshot.py; loaded by tests/upgrade/test_upgrade.py.
BEGIN TRANSACTION;
CREATE TABLE daemons (
	id VARCHAR NOT NULL, 
	hostname VARCHAR NOT NULL, 
	pid INTEGER NOT NULL, 
	started_at DATETIME NOT NULL, 
	last_seen DATETIME NOT NULL, 
	next_fire_at DATETIME, 
	state VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "daemons" VALUES('old-host:4242:snapshot','old-host',4242,'2025-12-31 23:59:00.000000','2025-12-31 23:59:30.000000','2025-12-31 23:59:30.000000','running');
CREATE TABLE "fires" (
	id INTEGER NOT NULL, 
	job_id VARCHAR NOT NULL, 
	scheduled_for DATETIME NOT NULL, 
	"trigger" VARCHAR(16) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME, 
	first_attempt_at DATETIME, 
	remote_id VARCHAR, 
	http_status INTEGER, 
	error TEXT, 
	field_errors TEXT, 
	skipped_count INTEGER, 
	skipped_until DATETIME, 
	claimed_by VARCHAR, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	remote_closed_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_fires_job_id_scheduled_for UNIQUE (job_id, scheduled_for), 
	CONSTRAINT ck_fires_status CHECK ("status" IN ('pending', 'sending', 'succeeded', 'retrying', 'uncertain', 'failed', 'skipped', 'held')), 
	CONSTRAINT ck_fires_trigger CHECK ("trigger" IN ('schedule', 'catch_up', 'manual', 'backfill')), 
	CONSTRAINT ck_fires_attempts CHECK (attempts >= 0)
);
INSERT INTO "fires" VALUES(1,'all','2025-12-31 23:59:10.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:10.000000','old-all-50',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:10.000000','2025-12-31 23:59:10.300000','2025-12-31 23:59:20.000000');
INSERT INTO "fires" VALUES(2,'all','2025-12-31 23:59:11.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:11.000000','old-all-49',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:11.000000','2025-12-31 23:59:11.300000','2025-12-31 23:59:20.000000');
INSERT INTO "fires" VALUES(3,'all','2025-12-31 23:59:12.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:12.000000','old-all-48',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:12.000000','2025-12-31 23:59:12.300000',NULL);
INSERT INTO "fires" VALUES(4,'all','2025-12-31 23:59:13.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:13.000000','old-all-47',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:13.000000','2025-12-31 23:59:13.300000',NULL);
INSERT INTO "fires" VALUES(5,'all','2025-12-31 23:59:14.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:14.000000','old-all-46',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:14.000000','2025-12-31 23:59:14.300000',NULL);
INSERT INTO "fires" VALUES(6,'all','2025-12-31 23:59:15.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:15.000000','old-all-45',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:15.000000','2025-12-31 23:59:15.300000',NULL);
INSERT INTO "fires" VALUES(7,'all','2025-12-31 23:59:16.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:16.000000','old-all-44',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:16.000000','2025-12-31 23:59:16.300000',NULL);
INSERT INTO "fires" VALUES(8,'all','2025-12-31 23:59:17.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:17.000000','old-all-43',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:17.000000','2025-12-31 23:59:17.300000',NULL);
INSERT INTO "fires" VALUES(9,'all','2025-12-31 23:59:18.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:18.000000','old-all-42',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:18.000000','2025-12-31 23:59:18.300000',NULL);
INSERT INTO "fires" VALUES(10,'all','2025-12-31 23:59:19.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:19.000000','old-all-41',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:19.000000','2025-12-31 23:59:19.300000',NULL);
INSERT INTO "fires" VALUES(11,'latest','2025-12-31 23:59:10.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:10.000000','old-latest-50',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:10.000000','2025-12-31 23:59:10.300000',NULL);
INSERT INTO "fires" VALUES(12,'latest','2025-12-31 23:59:11.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:11.000000','old-latest-49',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:11.000000','2025-12-31 23:59:11.300000',NULL);
INSERT INTO "fires" VALUES(13,'latest','2025-12-31 23:59:12.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:12.000000','old-latest-48',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:12.000000','2025-12-31 23:59:12.300000',NULL);
INSERT INTO "fires" VALUES(14,'latest','2025-12-31 23:59:13.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:13.000000','old-latest-47',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:13.000000','2025-12-31 23:59:13.300000',NULL);
INSERT INTO "fires" VALUES(15,'latest','2025-12-31 23:59:14.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:14.000000','old-latest-46',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:14.000000','2025-12-31 23:59:14.300000',NULL);
INSERT INTO "fires" VALUES(16,'latest','2025-12-31 23:59:12.500000','manual','succeeded',1,NULL,'2025-12-31 23:59:12.500000','old-latest-manual',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:12.500000','2025-12-31 23:59:12.800000',NULL);
INSERT INTO "fires" VALUES(17,'paused','2025-12-31 23:59:10.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:10.000000','old-paused-50',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:10.000000','2025-12-31 23:59:10.300000',NULL);
INSERT INTO "fires" VALUES(18,'paused','2025-12-31 23:59:11.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:11.000000','old-paused-49',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:11.000000','2025-12-31 23:59:11.300000',NULL);
INSERT INTO "fires" VALUES(19,'paused','2025-12-31 23:59:12.000000','schedule','succeeded',1,NULL,'2025-12-31 23:59:12.000000','old-paused-48',200,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:12.000000','2025-12-31 23:59:12.300000',NULL);
INSERT INTO "fires" VALUES(20,'all','2025-12-31 23:59:20.000000','schedule','failed',1,NULL,'2025-12-31 23:59:29.000000',NULL,422,'HTTP 422: owners: unknown user','{"owners": ["unknown user"]}',NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:29.000000','2025-12-31 23:59:29.000000',NULL);
INSERT INTO "fires" VALUES(21,'all','2025-12-31 23:59:26.000000','schedule','retrying',1,'2025-12-31 23:59:30.000000','2025-12-31 23:59:29.000000',NULL,NULL,'429',NULL,NULL,NULL,NULL,'2025-12-31 23:59:29.000000','2025-12-31 23:59:29.000000',NULL);
INSERT INTO "fires" VALUES(22,'all','2025-12-31 23:59:27.000000','schedule','uncertain',1,'2025-12-31 23:59:30.000000','2025-12-31 23:59:29.000000',NULL,NULL,'502',NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:29.000000','2025-12-31 23:59:29.000000',NULL);
INSERT INTO "fires" VALUES(23,'all','2025-12-31 23:59:28.000000','schedule','pending',0,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:29.000000','2025-12-31 23:59:29.000000',NULL);
INSERT INTO "fires" VALUES(24,'all','2025-12-31 23:59:29.000000','schedule','sending',1,NULL,'2025-12-31 23:59:29.000000',NULL,NULL,NULL,NULL,NULL,NULL,'old-host:4242:snapshot','2025-12-31 23:59:29.000000','2025-12-31 23:59:29.000000',NULL);
INSERT INTO "fires" VALUES(25,'all','2025-12-31 23:59:21.000000','catch_up','skipped',0,NULL,NULL,NULL,NULL,'missed; catch_up = none',NULL,5,'2025-12-31 23:59:25.000000',NULL,'2025-12-31 23:59:21.000000','2025-12-31 23:59:21.000000',NULL);
INSERT INTO "fires" VALUES(26,'all','2025-12-31 23:59:30.000000','schedule','held',0,'2025-12-31 23:59:59.000000',NULL,NULL,NULL,'held (overlap = buffer_one): task old-all-41 is still open',NULL,NULL,NULL,NULL,'2025-12-31 23:59:30.000000','2025-12-31 23:59:30.000000',NULL);
CREATE TABLE incidents (
	id INTEGER NOT NULL, 
	ref VARCHAR(32) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	subject TEXT NOT NULL, 
	open_key TEXT, 
	job_id VARCHAR, 
	state VARCHAR(8) NOT NULL, 
	detail TEXT NOT NULL, 
	opened_by VARCHAR, 
	opened_at DATETIME NOT NULL, 
	cleared_at DATETIME, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_incidents_open_key UNIQUE (open_key), 
	CONSTRAINT uq_incidents_ref UNIQUE (ref), 
	CONSTRAINT ck_incidents_kind CHECK ("kind" IN ('failed', 'skipped', 'quarantined', 'template', 'late', 'uncertain', 'credentials', 'token_expiry', 'store')), 
	CONSTRAINT ck_incidents_state CHECK (state IN ('open', 'cleared'))
);
INSERT INTO "incidents" VALUES(1,'inc-snapshot0001','failed','failed:all','failed:all','all','open','{"failed_at": "2025-12-31T23:59:29+00:00", "instant": "2025-12-31T23:59:20+00:00", "job": "all"}','old-host:4242:snapshot','2025-12-31 23:59:29.000000',NULL,'2025-12-31 23:59:29.000000');
INSERT INTO "incidents" VALUES(2,'inc-snapshot0002','late','late',NULL,NULL,'cleared','{"jobs": [{"count": 1, "instant": "2025-12-31T23:59:15+00:00", "job": "all"}]}','old-host:4242:snapshot','2025-12-31 23:59:16.000000','2025-12-31 23:59:18.000000','2025-12-31 23:59:18.000000');
CREATE TABLE job_marks (
	job_id VARCHAR NOT NULL, 
	paused_by VARCHAR(16), 
	pause_reason TEXT, 
	paused_at DATETIME, 
	pruned_before DATETIME, 
	pruned_successes INTEGER NOT NULL, 
	pruned_until DATETIME, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (job_id)
);
INSERT INTO "job_marks" VALUES('paused','operator',NULL,'2025-12-31 23:59:13.000000',NULL,0,NULL,'2025-12-31 23:59:13.000000');
CREATE TABLE jobs (
	id VARCHAR NOT NULL, 
	definition TEXT NOT NULL, 
	definition_hash VARCHAR(64) NOT NULL, 
	schedule_key VARCHAR NOT NULL, 
	enabled BOOLEAN NOT NULL, 
	active_since DATETIME NOT NULL, 
	source TEXT, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "jobs" VALUES('all','{"action":{"deadline":"+1d@17:00","owners":{"groups":[],"guests":[],"users":[1001]},"started_at":"+0","task_type":"task","title":"{job} {fire_utc:%Y-%m-%dT%H:%M:%SZ}","type":"create_task"},"catch_up":"all","catch_up_window":"1h","description":"","enabled":true,"id":"all","jitter":"0s","schedule":"* * * * * *","timezone":"UTC"}','a6dd61ef7403c9f78e9a52658f7469fdd38558daa635140109b927b580d052b9','a3ce27aae07ba1b5c1bcc8947b591193',1,'2025-12-31 23:59:00.000000','jobs/all.toml','2025-12-31 23:59:00.000000','2025-12-31 23:59:00.000000');
INSERT INTO "jobs" VALUES('latest','{"action":{"deadline":"+1d@17:00","owners":{"groups":[],"guests":[],"users":[1001]},"started_at":"+0","task_type":"task","title":"{job} {fire_utc:%Y-%m-%dT%H:%M:%SZ}","type":"create_task"},"catch_up":"latest","catch_up_window":"1d","description":"","enabled":true,"id":"latest","jitter":"0s","schedule":"* * * * * *","timezone":"UTC"}','a98ba22340aa400ebc04ce2d5f2f0e880f99af93b4e26bc2634ef54e573f8007','a3ce27aae07ba1b5c1bcc8947b591193',1,'2025-12-31 23:59:00.000000','jobs/latest.toml','2025-12-31 23:59:00.000000','2025-12-31 23:59:00.000000');
INSERT INTO "jobs" VALUES('paused','{"action":{"deadline":"+1d@17:00","owners":{"groups":[],"guests":[],"users":[1001]},"started_at":"+0","task_type":"task","title":"{job} {fire_utc:%Y-%m-%dT%H:%M:%SZ}","type":"create_task"},"catch_up":"latest","catch_up_window":"1d","description":"","enabled":true,"id":"paused","jitter":"0s","schedule":"* * * * * *","timezone":"UTC"}','b1f8bb95064226503a7605d2671cb5b505b44cdcd4a6c6bbed5901dd69231166','a3ce27aae07ba1b5c1bcc8947b591193',0,'2025-12-31 23:59:00.000000','jobs/paused.toml','2025-12-31 23:59:00.000000','2025-12-31 23:59:13.000000');
CREATE TABLE meta (
	"key" VARCHAR NOT NULL, 
	value VARCHAR NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "meta" VALUES('jobs_revision','2');
INSERT INTO "meta" VALUES('schema_version','4');
CREATE TABLE notifications (
	id INTEGER NOT NULL, 
	incident_id INTEGER NOT NULL, 
	event VARCHAR(16) NOT NULL, 
	notify_type VARCHAR(16) NOT NULL, 
	target VARCHAR(64) NOT NULL, 
	url_index INTEGER NOT NULL, 
	title TEXT NOT NULL, 
	body TEXT NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME, 
	claimed_by VARCHAR, 
	claimed_at DATETIME, 
	last_error TEXT, 
	sent_at DATETIME, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_notifications_status CHECK ("status" IN ('pending', 'sending', 'sent', 'dropped')), 
	CONSTRAINT ck_notifications_notify_type CHECK ("notify_type" IN ('failure', 'warning', 'success', 'info')), 
	CONSTRAINT ck_notifications_attempts CHECK (attempts >= 0)
);
INSERT INTO "notifications" VALUES(1,1,'opened','failure','default',0,'failed: all','HTTP 422','sent',1,NULL,NULL,NULL,NULL,'2025-12-31 23:59:29.000000','2025-12-31 23:59:29.000000','2025-12-31 23:59:29.000000');
INSERT INTO "notifications" VALUES(2,1,'opened','failure','ops',0,'failed: all','HTTP 422','pending',0,'2025-12-31 23:59:29.000000',NULL,NULL,NULL,NULL,'2025-12-31 23:59:29.000000','2025-12-31 23:59:29.000000');
CREATE INDEX ix_incidents_state_kind ON incidents (state, kind);
CREATE INDEX ix_notifications_status_next_attempt_at ON notifications (status, next_attempt_at);
CREATE INDEX ix_notifications_incident_id ON notifications (incident_id);
CREATE INDEX ix_fires_scheduled_for ON "fires" (scheduled_for);
CREATE INDEX ix_fires_status_next_attempt_at ON "fires" (status, next_attempt_at);
COMMIT;
