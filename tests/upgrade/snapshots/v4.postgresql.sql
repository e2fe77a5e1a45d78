-- A tallyfy-scheduler store at schema version 4, with data in it.
-- Written by tests/upgrade/make_snapshot.py; loaded by tests/upgrade/test_upgrade.py.
CREATE TABLE daemons (
    id character varying NOT NULL,
    hostname character varying NOT NULL,
    pid integer NOT NULL,
    started_at timestamp without time zone NOT NULL,
    last_seen timestamp without time zone NOT NULL,
    next_fire_at timestamp without time zone,
    state character varying NOT NULL
);

CREATE TABLE fires (
    id integer NOT NULL,
    job_id character varying NOT NULL,
    scheduled_for timestamp without time zone NOT NULL,
    trigger character varying(16) NOT NULL,
    status character varying(16) NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at timestamp without time zone,
    first_attempt_at timestamp without time zone,
    remote_id character varying,
    http_status integer,
    error text,
    field_errors text,
    skipped_count integer,
    skipped_until timestamp without time zone,
    claimed_by character varying,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    remote_closed_at timestamp without time zone,
    CONSTRAINT ck_fires_attempts CHECK ((attempts >= 0)),
    CONSTRAINT ck_fires_status CHECK (((status)::text = ANY ((ARRAY['pending'::character varying, 'sending'::character varying, 'succeeded'::character varying, 'retrying'::character varying, 'uncertain'::character varying, 'failed'::character varying, 'skipped'::character varying, 'held'::character varying])::text[]))),
    CONSTRAINT ck_fires_trigger CHECK (((trigger)::text = ANY ((ARRAY['schedule'::character varying, 'catch_up'::character varying, 'manual'::character varying, 'backfill'::character varying])::text[])))
);

CREATE SEQUENCE fires_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE fires_id_seq OWNED BY fires.id;

CREATE TABLE incidents (
    id integer NOT NULL,
    ref character varying(32) NOT NULL,
    kind character varying(16) NOT NULL,
    subject text NOT NULL,
    open_key text,
    job_id character varying,
    state character varying(8) NOT NULL,
    detail text NOT NULL,
    opened_by character varying,
    opened_at timestamp without time zone NOT NULL,
    cleared_at timestamp without time zone,
    updated_at timestamp without time zone NOT NULL,
    CONSTRAINT ck_incidents_kind CHECK (((kind)::text = ANY ((ARRAY['failed'::character varying, 'skipped'::character varying, 'quarantined'::character varying, 'template'::character varying, 'late'::character varying, 'uncertain'::character varying, 'credentials'::character varying, 'token_expiry'::character varying, 'store'::character varying])::text[]))),
    CONSTRAINT ck_incidents_state CHECK (((state)::text = ANY ((ARRAY['open'::character varying, 'cleared'::character varying])::text[])))
);

CREATE SEQUENCE incidents_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE incidents_id_seq OWNED BY incidents.id;

CREATE TABLE job_marks (
    job_id character varying NOT NULL,
    paused_by character varying(16),
    pause_reason text,
    paused_at timestamp without time zone,
    pruned_before timestamp without time zone,
    pruned_successes integer NOT NULL,
    pruned_until timestamp without time zone,
    updated_at timestamp without time zone NOT NULL
);

CREATE TABLE jobs (
    id character varying NOT NULL,
    definition text NOT NULL,
    definition_hash character varying(64) NOT NULL,
    schedule_key character varying NOT NULL,
    enabled boolean NOT NULL,
    active_since timestamp without time zone NOT NULL,
    source text,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);

CREATE TABLE meta (
    key character varying NOT NULL,
    value character varying NOT NULL
);

CREATE TABLE notifications (
    id integer NOT NULL,
    incident_id integer NOT NULL,
    event character varying(16) NOT NULL,
    notify_type character varying(16) NOT NULL,
    target character varying(64) NOT NULL,
    url_index integer NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    status character varying(16) NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at timestamp without time zone,
    claimed_by character varying,
    claimed_at timestamp without time zone,
    last_error text,
    sent_at timestamp without time zone,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    CONSTRAINT ck_notifications_attempts CHECK ((attempts >= 0)),
    CONSTRAINT ck_notifications_notify_type CHECK (((notify_type)::text = ANY ((ARRAY['failure'::character varying, 'warning'::character varying, 'success'::character varying, 'info'::character varying])::text[]))),
    CONSTRAINT ck_notifications_status CHECK (((status)::text = ANY ((ARRAY['pending'::character varying, 'sending'::character varying, 'sent'::character varying, 'dropped'::character varying])::text[])))
);

CREATE SEQUENCE notifications_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE notifications_id_seq OWNED BY notifications.id;

ALTER TABLE ONLY fires ALTER COLUMN id SET DEFAULT nextval('fires_id_seq'::regclass);

ALTER TABLE ONLY incidents ALTER COLUMN id SET DEFAULT nextval('incidents_id_seq'::regclass);

ALTER TABLE ONLY notifications ALTER COLUMN id SET DEFAULT nextval('notifications_id_seq'::regclass);

INSERT INTO daemons VALUES ('old-host:4242:snapshot', 'old-host', 4242, '2025-12-31 23:59:00', '2025-12-31 23:59:30', '2025-12-31 23:59:30', 'running');

INSERT INTO fires VALUES (3, 'all', '2025-12-31 23:59:12', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:12', 'old-all-48', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:12', '2025-12-31 23:59:12.3', NULL);
INSERT INTO fires VALUES (4, 'all', '2025-12-31 23:59:13', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:13', 'old-all-47', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:13', '2025-12-31 23:59:13.3', NULL);
INSERT INTO fires VALUES (5, 'all', '2025-12-31 23:59:14', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:14', 'old-all-46', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:14', '2025-12-31 23:59:14.3', NULL);
INSERT INTO fires VALUES (6, 'all', '2025-12-31 23:59:15', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:15', 'old-all-45', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:15', '2025-12-31 23:59:15.3', NULL);
INSERT INTO fires VALUES (7, 'all', '2025-12-31 23:59:16', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:16', 'old-all-44', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:16', '2025-12-31 23:59:16.3', NULL);
INSERT INTO fires VALUES (8, 'all', '2025-12-31 23:59:17', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:17', 'old-all-43', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:17', '2025-12-31 23:59:17.3', NULL);
INSERT INTO fires VALUES (9, 'all', '2025-12-31 23:59:18', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:18', 'old-all-42', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:18', '2025-12-31 23:59:18.3', NULL);
INSERT INTO fires VALUES (10, 'all', '2025-12-31 23:59:19', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:19', 'old-all-41', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:19', '2025-12-31 23:59:19.3', NULL);
INSERT INTO fires VALUES (11, 'latest', '2025-12-31 23:59:10', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:10', 'old-latest-50', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:10', '2025-12-31 23:59:10.3', NULL);
INSERT INTO fires VALUES (12, 'latest', '2025-12-31 23:59:11', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:11', 'old-latest-49', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:11', '2025-12-31 23:59:11.3', NULL);
INSERT INTO fires VALUES (13, 'latest', '2025-12-31 23:59:12', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:12', 'old-latest-48', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:12', '2025-12-31 23:59:12.3', NULL);
INSERT INTO fires VALUES (14, 'latest', '2025-12-31 23:59:13', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:13', 'old-latest-47', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:13', '2025-12-31 23:59:13.3', NULL);
INSERT INTO fires VALUES (15, 'latest', '2025-12-31 23:59:14', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:14', 'old-latest-46', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:14', '2025-12-31 23:59:14.3', NULL);
INSERT INTO fires VALUES (16, 'latest', '2025-12-31 23:59:12.5', 'manual', 'succeeded', 1, NULL, '2025-12-31 23:59:12.5', 'old-latest-manual', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:12.5', '2025-12-31 23:59:12.8', NULL);
INSERT INTO fires VALUES (17, 'paused', '2025-12-31 23:59:10', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:10', 'old-paused-50', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:10', '2025-12-31 23:59:10.3', NULL);
INSERT INTO fires VALUES (18, 'paused', '2025-12-31 23:59:11', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:11', 'old-paused-49', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:11', '2025-12-31 23:59:11.3', NULL);
INSERT INTO fires VALUES (19, 'paused', '2025-12-31 23:59:12', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:12', 'old-paused-48', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:12', '2025-12-31 23:59:12.3', NULL);
INSERT INTO fires VALUES (23, 'all', '2025-12-31 23:59:28', 'schedule', 'pending', 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:29', '2025-12-31 23:59:29', NULL);
INSERT INTO fires VALUES (24, 'all', '2025-12-31 23:59:29', 'schedule', 'sending', 1, NULL, '2025-12-31 23:59:29', NULL, NULL, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:29', '2025-12-31 23:59:29', NULL);
INSERT INTO fires VALUES (20, 'all', '2025-12-31 23:59:20', 'schedule', 'failed', 1, NULL, '2025-12-31 23:59:29', NULL, 422, 'HTTP 422: owners: unknown user', '{"owners": ["unknown user"]}', NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:29', '2025-12-31 23:59:29', NULL);
INSERT INTO fires VALUES (21, 'all', '2025-12-31 23:59:26', 'schedule', 'retrying', 1, '2025-12-31 23:59:30', '2025-12-31 23:59:29', NULL, NULL, '429', NULL, NULL, NULL, NULL, '2025-12-31 23:59:29', '2025-12-31 23:59:29', NULL);
INSERT INTO fires VALUES (22, 'all', '2025-12-31 23:59:27', 'schedule', 'uncertain', 1, '2025-12-31 23:59:30', '2025-12-31 23:59:29', NULL, NULL, '502', NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:29', '2025-12-31 23:59:29', NULL);
INSERT INTO fires VALUES (25, 'all', '2025-12-31 23:59:21', 'catch_up', 'skipped', 0, NULL, NULL, NULL, NULL, 'missed; catch_up = none', NULL, 5, '2025-12-31 23:59:25', NULL, '2025-12-31 23:59:21', '2025-12-31 23:59:21', NULL);
INSERT INTO fires VALUES (26, 'all', '2025-12-31 23:59:30', 'schedule', 'held', 0, '2025-12-31 23:59:59', NULL, NULL, NULL, 'held (overlap = buffer_one): task old-all-41 is still open', NULL, NULL, NULL, NULL, '2025-12-31 23:59:30', '2025-12-31 23:59:30', NULL);
INSERT INTO fires VALUES (1, 'all', '2025-12-31 23:59:10', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:10', 'old-all-50', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:10', '2025-12-31 23:59:10.3', '2025-12-31 23:59:20');
INSERT INTO fires VALUES (2, 'all', '2025-12-31 23:59:11', 'schedule', 'succeeded', 1, NULL, '2025-12-31 23:59:11', 'old-all-49', 200, NULL, NULL, NULL, NULL, 'old-host:4242:snapshot', '2025-12-31 23:59:11', '2025-12-31 23:59:11.3', '2025-12-31 23:59:20');

INSERT INTO incidents VALUES (1, 'inc-snapshot0001', 'failed', 'failed:all', 'failed:all', 'all', 'open', '{"failed_at": "2025-12-31T23:59:29+00:00", "instant": "2025-12-31T23:59:20+00:00", "job": "all"}', 'old-host:4242:snapshot', '2025-12-31 23:59:29', NULL, '2025-12-31 23:59:29');
INSERT INTO incidents VALUES (2, 'inc-snapshot0002', 'late', 'late', NULL, NULL, 'cleared', '{"jobs": [{"count": 1, "instant": "2025-12-31T23:59:15+00:00", "job": "all"}]}', 'old-host:4242:snapshot', '2025-12-31 23:59:16', '2025-12-31 23:59:18', '2025-12-31 23:59:18');

INSERT INTO job_marks VALUES ('paused', 'operator', NULL, '2025-12-31 23:59:13', NULL, 0, NULL, '2025-12-31 23:59:13');

INSERT INTO jobs VALUES ('all', '{"action":{"deadline":"+1d@17:00","owners":{"groups":[],"guests":[],"users":[1001]},"started_at":"+0","task_type":"task","title":"{job} {fire_utc:%Y-%m-%dT%H:%M:%SZ}","type":"create_task"},"catch_up":"all","catch_up_window":"1h","description":"","enabled":true,"id":"all","jitter":"0s","schedule":"* * * * * *","timezone":"UTC"}', 'a6dd61ef7403c9f78e9a52658f7469fdd38558daa635140109b927b580d052b9', 'a3ce27aae07ba1b5c1bcc8947b591193', true, '2025-12-31 23:59:00', 'jobs/all.toml', '2025-12-31 23:59:00', '2025-12-31 23:59:00');
INSERT INTO jobs VALUES ('latest', '{"action":{"deadline":"+1d@17:00","owners":{"groups":[],"guests":[],"users":[1001]},"started_at":"+0","task_type":"task","title":"{job} {fire_utc:%Y-%m-%dT%H:%M:%SZ}","type":"create_task"},"catch_up":"latest","catch_up_window":"1d","description":"","enabled":true,"id":"latest","jitter":"0s","schedule":"* * * * * *","timezone":"UTC"}', 'a98ba22340aa400ebc04ce2d5f2f0e880f99af93b4e26bc2634ef54e573f8007', 'a3ce27aae07ba1b5c1bcc8947b591193', true, '2025-12-31 23:59:00', 'jobs/latest.toml', '2025-12-31 23:59:00', '2025-12-31 23:59:00');
INSERT INTO jobs VALUES ('paused', '{"action":{"deadline":"+1d@17:00","owners":{"groups":[],"guests":[],"users":[1001]},"started_at":"+0","task_type":"task","title":"{job} {fire_utc:%Y-%m-%dT%H:%M:%SZ}","type":"create_task"},"catch_up":"latest","catch_up_window":"1d","description":"","enabled":true,"id":"paused","jitter":"0s","schedule":"* * * * * *","timezone":"UTC"}', 'b1f8bb95064226503a7605d2671cb5b505b44cdcd4a6c6bbed5901dd69231166', 'a3ce27aae07ba1b5c1bcc8947b591193', false, '2025-12-31 23:59:00', 'jobs/paused.toml', '2025-12-31 23:59:00', '2025-12-31 23:59:13');

INSERT INTO meta VALUES ('schema_version', '4');
INSERT INTO meta VALUES ('jobs_revision', '2');

INSERT INTO notifications VALUES (1, 1, 'opened', 'failure', 'default', 0, 'failed: all', 'HTTP 422', 'sent', 1, NULL, NULL, NULL, NULL, '2025-12-31 23:59:29', '2025-12-31 23:59:29', '2025-12-31 23:59:29');
INSERT INTO notifications VALUES (2, 1, 'opened', 'failure', 'ops', 0, 'failed: all', 'HTTP 422', 'pending', 0, '2025-12-31 23:59:29', NULL, NULL, NULL, NULL, '2025-12-31 23:59:29', '2025-12-31 23:59:29');

SELECT pg_catalog.setval('fires_id_seq', 26, true);

SELECT pg_catalog.setval('incidents_id_seq', 2, true);

SELECT pg_catalog.setval('notifications_id_seq', 2, true);

ALTER TABLE ONLY daemons
    ADD CONSTRAINT daemons_pkey PRIMARY KEY (id);

ALTER TABLE ONLY fires
    ADD CONSTRAINT fires_pkey PRIMARY KEY (id);

ALTER TABLE ONLY incidents
    ADD CONSTRAINT incidents_pkey PRIMARY KEY (id);

ALTER TABLE ONLY job_marks
    ADD CONSTRAINT job_marks_pkey PRIMARY KEY (job_id);

ALTER TABLE ONLY jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY meta
    ADD CONSTRAINT meta_pkey PRIMARY KEY (key);

ALTER TABLE ONLY notifications
    ADD CONSTRAINT notifications_pkey PRIMARY KEY (id);

ALTER TABLE ONLY fires
    ADD CONSTRAINT uq_fires_job_id_scheduled_for UNIQUE (job_id, scheduled_for);

ALTER TABLE ONLY incidents
    ADD CONSTRAINT uq_incidents_open_key UNIQUE (open_key);

ALTER TABLE ONLY incidents
    ADD CONSTRAINT uq_incidents_ref UNIQUE (ref);

CREATE INDEX ix_fires_scheduled_for ON fires USING btree (scheduled_for);

CREATE INDEX ix_fires_status_next_attempt_at ON fires USING btree (status, next_attempt_at);

CREATE INDEX ix_incidents_state_kind ON incidents USING btree (state, kind);

CREATE INDEX ix_notifications_incident_id ON notifications USING btree (incident_id);

CREATE INDEX ix_notifications_status_next_attempt_at ON notifications USING btree (status, next_attempt_at);
