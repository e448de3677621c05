--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: public; Type: SCHEMA; Schema: -; Owner: factory5g
--

-- *not* creating schema, since initdb creates it


ALTER SCHEMA public OWNER TO factory5g;

--
-- Name: timescaledb; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA public;


--
-- Name: EXTENSION timescaledb; Type: COMMENT; Schema: -; Owner: 
--

COMMENT ON EXTENSION timescaledb IS 'Enables scalable inserts and complex queries for time-series data (Apache 2 Edition)';


--
-- Name: api_key_admin(text); Type: FUNCTION; Schema: public; Owner: factory5g
--

CREATE FUNCTION public.api_key_admin(token text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    DECLARE
        found_ text;
    BEGIN
        SELECT prefix INTO found_ FROM api_keys
        WHERE prefix = substring(token FROM '^f5g_([^_]{10})_')
          AND hash = encode(sha256(convert_to(token, 'UTF8')), 'hex')
          AND scope = 'admin' AND projects IS NULL AND revoked_at IS NULL;
        IF found_ IS NULL THEN
            RAISE EXCEPTION 'a live admin key is needed to change API keys'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN found_;
    END $$;


ALTER FUNCTION public.api_key_admin(token text) OWNER TO factory5g;

--
-- Name: api_key_audit(); Type: FUNCTION; Schema: public; Owner: factory5g
--

CREATE FUNCTION public.api_key_audit() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'public', 'pg_temp'
    AS $$
    DECLARE
        row_ api_keys := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        action_ text := CASE
            WHEN TG_OP = 'INSERT' THEN 'created'
            WHEN TG_OP = 'DELETE' THEN 'deleted'
            WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN 'revoked'
            ELSE 'changed' END;
    BEGIN
        INSERT INTO api_key_events (prefix, action, scope, actor)
        VALUES (row_.prefix, action_, row_.scope,
                nullif(current_setting('factory5g.key_actor', true), ''));
        RETURN NULL;
    END $$;


ALTER FUNCTION public.api_key_audit() OWNER TO factory5g;

--
-- Name: api_key_bootstrap(text, text); Type: FUNCTION; Schema: public; Owner: factory5g
--

CREATE FUNCTION public.api_key_bootstrap(token text, key_name text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $_$
    DECLARE
        prefix_ text := substring(token FROM '^f5g_([^_]{10})_.{32,}$');
    BEGIN
        IF prefix_ IS NULL THEN
            RAISE EXCEPTION 'token must look like f5g_<10 letters or digits>_<32+ characters>'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- One bootstrap at a time, so two replicas cannot both pass the check below.
        LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE;
        IF EXISTS (SELECT 1 FROM api_keys WHERE prefix = prefix_) THEN
            RETURN false;  -- known, revoked or not: a revocation sticks
        END IF;
        IF EXISTS (SELECT 1 FROM api_keys WHERE scope = 'admin') THEN
            RAISE EXCEPTION 'an admin key exists already: the bootstrap key is only stored '
                'in a database without one; create keys with an admin key'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        PERFORM set_config('factory5g.key_actor', 'bootstrap', true);
        INSERT INTO api_keys (prefix, hash, name, scope, projects)
        VALUES (prefix_, encode(sha256(convert_to(token, 'UTF8')), 'hex'), key_name,
                'admin', NULL);
        PERFORM set_config('factory5g.key_actor', '', true);
        RETURN true;
    END $_$;


ALTER FUNCTION public.api_key_bootstrap(token text, key_name text) OWNER TO factory5g;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: api_keys; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.api_keys (
    prefix text NOT NULL,
    hash text NOT NULL,
    name text NOT NULL,
    scope text NOT NULL,
    projects text[],
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone
);


ALTER TABLE public.api_keys OWNER TO factory5g;

--
-- Name: COLUMN api_keys.prefix; Type: COMMENT; Schema: public; Owner: factory5g
--

COMMENT ON COLUMN public.api_keys.prefix IS 'Visible part of the key, for lookup.';


--
-- Name: COLUMN api_keys.hash; Type: COMMENT; Schema: public; Owner: factory5g
--

COMMENT ON COLUMN public.api_keys.hash IS 'sha256 hex of the whole key.';


--
-- Name: COLUMN api_keys.scope; Type: COMMENT; Schema: public; Owner: factory5g
--

COMMENT ON COLUMN public.api_keys.scope IS 'read | operate | admin';


--
-- Name: COLUMN api_keys.projects; Type: COMMENT; Schema: public; Owner: factory5g
--

COMMENT ON COLUMN public.api_keys.projects IS 'Visible projects; NULL = all.';


--
-- Name: api_key_create(text, text, text, text, text, text[]); Type: FUNCTION; Schema: public; Owner: factory5g
--

CREATE FUNCTION public.api_key_create(actor_token text, key_prefix text, key_hash text, key_name text, key_scope text, key_projects text[]) RETURNS public.api_keys
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $_$
    DECLARE
        actor_ text := api_key_admin(actor_token);
        created_ api_keys;
    BEGIN
        IF key_scope IS NULL OR key_scope NOT IN ('read', 'operate', 'admin') THEN
            RAISE EXCEPTION 'scope must be read, operate or admin'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF key_prefix !~ '^[^_]{10}$' OR key_hash !~ '^[0-9a-f]{64}$' THEN
            RAISE EXCEPTION 'prefix must be 10 characters and hash 64 hex digits'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM set_config('factory5g.key_actor', actor_, true);
        INSERT INTO api_keys (prefix, hash, name, scope, projects)
        VALUES (key_prefix, key_hash, key_name, key_scope, key_projects)
        RETURNING * INTO created_;
        PERFORM set_config('factory5g.key_actor', '', true);
        RETURN created_;
    END $_$;


ALTER FUNCTION public.api_key_create(actor_token text, key_prefix text, key_hash text, key_name text, key_scope text, key_projects text[]) OWNER TO factory5g;

--
-- Name: api_key_revoke(text, text); Type: FUNCTION; Schema: public; Owner: factory5g
--

CREATE FUNCTION public.api_key_revoke(actor_token text, key_prefix text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    DECLARE
        actor_ text := api_key_admin(actor_token);
        revoked_ integer;
    BEGIN
        PERFORM set_config('factory5g.key_actor', actor_, true);
        UPDATE api_keys SET revoked_at = now()
        WHERE prefix = key_prefix AND revoked_at IS NULL;
        GET DIAGNOSTICS revoked_ = ROW_COUNT;
        PERFORM set_config('factory5g.key_actor', '', true);
        RETURN revoked_ > 0;
    END $$;


ALTER FUNCTION public.api_key_revoke(actor_token text, key_prefix text) OWNER TO factory5g;

--
-- Name: agv_status; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.agv_status (
    ts timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    seq bigint NOT NULL,
    x double precision,
    y double precision,
    heading double precision,
    speed double precision,
    battery double precision NOT NULL,
    state text NOT NULL,
    localization double precision,
    task_id text,
    error_code text,
    received_at timestamp with time zone NOT NULL
);


ALTER TABLE public.agv_status OWNER TO factory5g;

--
-- Name: alarm_events; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.alarm_events (
    ts timestamp with time zone NOT NULL,
    alarm_id bigint NOT NULL,
    project_id text NOT NULL,
    transition text NOT NULL,
    severity text NOT NULL,
    actor text,
    evidence jsonb DEFAULT '{}'::jsonb NOT NULL
);


ALTER TABLE public.alarm_events OWNER TO factory5g;

--
-- Name: COLUMN alarm_events.transition; Type: COMMENT; Schema: public; Owner: factory5g
--

COMMENT ON COLUMN public.alarm_events.transition IS 'opened|updated|escalated|acknowledged|cleared';


--
-- Name: alarms; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.alarms (
    id bigint NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    rule text NOT NULL,
    severity text NOT NULL,
    state text NOT NULL,
    message text DEFAULT ''::text NOT NULL,
    count integer DEFAULT 1 NOT NULL,
    last_value double precision,
    evidence jsonb DEFAULT '{}'::jsonb NOT NULL,
    opened_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    acknowledged_at timestamp with time zone,
    acknowledged_by text,
    cleared_at timestamp with time zone
);


ALTER TABLE public.alarms OWNER TO factory5g;

--
-- Name: COLUMN alarms.state; Type: COMMENT; Schema: public; Owner: factory5g
--

COMMENT ON COLUMN public.alarms.state IS 'open | acknowledged | cleared';


--
-- Name: alarms_id_seq; Type: SEQUENCE; Schema: public; Owner: factory5g
--

CREATE SEQUENCE public.alarms_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.alarms_id_seq OWNER TO factory5g;

--
-- Name: alarms_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: factory5g
--

ALTER SEQUENCE public.alarms_id_seq OWNED BY public.alarms.id;


--
-- Name: alembic_version; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.alembic_version (
    version_num character varying(32) NOT NULL
);


ALTER TABLE public.alembic_version OWNER TO factory5g;

--
-- Name: api_key_events; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.api_key_events (
    id bigint NOT NULL,
    ts timestamp with time zone DEFAULT now() NOT NULL,
    prefix text NOT NULL,
    action text NOT NULL,
    scope text,
    actor text,
    db_user text DEFAULT SESSION_USER NOT NULL
);


ALTER TABLE public.api_key_events OWNER TO factory5g;

--
-- Name: TABLE api_key_events; Type: COMMENT; Schema: public; Owner: factory5g
--

COMMENT ON TABLE public.api_key_events IS 'Every change to api_keys: created, revoked, changed or deleted; actor is the prefix of the admin key that acted, bootstrap, or NULL for the owner''s direct SQL.';


--
-- Name: api_key_events_id_seq; Type: SEQUENCE; Schema: public; Owner: factory5g
--

CREATE SEQUENCE public.api_key_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.api_key_events_id_seq OWNER TO factory5g;

--
-- Name: api_key_events_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: factory5g
--

ALTER SEQUENCE public.api_key_events_id_seq OWNED BY public.api_key_events.id;


--
-- Name: dead_letters; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.dead_letters (
    received_at timestamp with time zone NOT NULL,
    topic text NOT NULL,
    reason text NOT NULL,
    detail text NOT NULL,
    project_id text,
    device_id text,
    payload bytea,
    payload_size integer NOT NULL
);


ALTER TABLE public.dead_letters OWNER TO factory5g;

--
-- Name: COLUMN dead_letters.payload; Type: COMMENT; Schema: public; Owner: factory5g
--

COMMENT ON COLUMN public.dead_letters.payload IS 'First bytes of the payload.';


--
-- Name: devices; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.devices (
    project_id text NOT NULL,
    device_id text NOT NULL,
    kind text NOT NULL,
    first_seen timestamp with time zone DEFAULT now() NOT NULL,
    last_seen timestamp with time zone DEFAULT now() NOT NULL,
    online boolean DEFAULT true NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL
);


ALTER TABLE public.devices OWNER TO factory5g;

--
-- Name: inspections; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.inspections (
    ts timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    seq bigint NOT NULL,
    station text NOT NULL,
    part_id text NOT NULL,
    passed boolean NOT NULL,
    defect_count smallint NOT NULL,
    defects jsonb,
    confidence double precision NOT NULL,
    inference_ms double precision NOT NULL,
    model text,
    received_at timestamp with time zone NOT NULL
);


ALTER TABLE public.inspections OWNER TO factory5g;

--
-- Name: link_kpis; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.link_kpis (
    ts timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    seq bigint NOT NULL,
    rsrp double precision NOT NULL,
    sinr double precision NOT NULL,
    latency_ms double precision NOT NULL,
    rsrq double precision,
    jitter_ms double precision,
    loss_pct double precision,
    ul_mbps double precision,
    dl_mbps double precision,
    cell_id text,
    slice text,
    received_at timestamp with time zone NOT NULL
);


ALTER TABLE public.link_kpis OWNER TO factory5g;

--
-- Name: projects; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.projects (
    id text NOT NULL,
    name text NOT NULL,
    enterprise text,
    city text,
    scenario text,
    status text DEFAULT 'active'::text NOT NULL,
    targets jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE public.projects OWNER TO factory5g;

--
-- Name: COLUMN projects.id; Type: COMMENT; Schema: public; Owner: factory5g
--

COMMENT ON COLUMN public.projects.id IS 'Project id as used in topics.';


--
-- Name: COLUMN projects.scenario; Type: COMMENT; Schema: public; Owner: factory5g
--

COMMENT ON COLUMN public.projects.scenario IS 'e.g. vision inspection, AGV logistics';


--
-- Name: rollup_agv_1h; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.rollup_agv_1h (
    bucket timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    n bigint NOT NULL,
    last_ts timestamp with time zone NOT NULL,
    x_n bigint NOT NULL,
    x_sum double precision,
    x_min double precision,
    x_max double precision,
    x_last double precision,
    y_n bigint NOT NULL,
    y_sum double precision,
    y_min double precision,
    y_max double precision,
    y_last double precision,
    heading_n bigint NOT NULL,
    heading_sum double precision,
    heading_min double precision,
    heading_max double precision,
    heading_last double precision,
    speed_n bigint NOT NULL,
    speed_sum double precision,
    speed_min double precision,
    speed_max double precision,
    speed_last double precision,
    battery_n bigint NOT NULL,
    battery_sum double precision,
    battery_min double precision,
    battery_max double precision,
    battery_last double precision,
    localization_n bigint NOT NULL,
    localization_sum double precision,
    localization_min double precision,
    localization_max double precision,
    localization_last double precision,
    idle_n bigint NOT NULL,
    moving_n bigint NOT NULL,
    charging_n bigint NOT NULL,
    loading_n bigint NOT NULL,
    error_n bigint NOT NULL,
    estop_n bigint NOT NULL,
    lowbatt_n bigint NOT NULL,
    estop_entries bigint NOT NULL
);


ALTER TABLE public.rollup_agv_1h OWNER TO factory5g;

--
-- Name: rollup_agv_1m; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.rollup_agv_1m (
    bucket timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    n bigint NOT NULL,
    last_ts timestamp with time zone NOT NULL,
    x_n bigint NOT NULL,
    x_sum double precision,
    x_min double precision,
    x_max double precision,
    x_last double precision,
    y_n bigint NOT NULL,
    y_sum double precision,
    y_min double precision,
    y_max double precision,
    y_last double precision,
    heading_n bigint NOT NULL,
    heading_sum double precision,
    heading_min double precision,
    heading_max double precision,
    heading_last double precision,
    speed_n bigint NOT NULL,
    speed_sum double precision,
    speed_min double precision,
    speed_max double precision,
    speed_last double precision,
    battery_n bigint NOT NULL,
    battery_sum double precision,
    battery_min double precision,
    battery_max double precision,
    battery_last double precision,
    localization_n bigint NOT NULL,
    localization_sum double precision,
    localization_min double precision,
    localization_max double precision,
    localization_last double precision,
    idle_n bigint NOT NULL,
    moving_n bigint NOT NULL,
    charging_n bigint NOT NULL,
    loading_n bigint NOT NULL,
    error_n bigint NOT NULL,
    estop_n bigint NOT NULL,
    lowbatt_n bigint NOT NULL,
    estop_entries bigint NOT NULL
);


ALTER TABLE public.rollup_agv_1m OWNER TO factory5g;

--
-- Name: rollup_defects_1h; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.rollup_defects_1h (
    bucket timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    defect_type text NOT NULL,
    n bigint NOT NULL,
    last_ts timestamp with time zone NOT NULL
);


ALTER TABLE public.rollup_defects_1h OWNER TO factory5g;

--
-- Name: rollup_defects_1m; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.rollup_defects_1m (
    bucket timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    defect_type text NOT NULL,
    n bigint NOT NULL,
    last_ts timestamp with time zone NOT NULL
);


ALTER TABLE public.rollup_defects_1m OWNER TO factory5g;

--
-- Name: rollup_inspection_1h; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.rollup_inspection_1h (
    bucket timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    n bigint NOT NULL,
    last_ts timestamp with time zone NOT NULL,
    confidence_n bigint NOT NULL,
    confidence_sum double precision,
    confidence_min double precision,
    confidence_max double precision,
    confidence_last double precision,
    inference_ms_n bigint NOT NULL,
    inference_ms_sum double precision,
    inference_ms_min double precision,
    inference_ms_max double precision,
    inference_ms_last double precision,
    defect_count_n bigint NOT NULL,
    defect_count_sum double precision,
    defect_count_min double precision,
    defect_count_max double precision,
    defect_count_last double precision,
    passed_n bigint NOT NULL
);


ALTER TABLE public.rollup_inspection_1h OWNER TO factory5g;

--
-- Name: rollup_inspection_1m; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.rollup_inspection_1m (
    bucket timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    n bigint NOT NULL,
    last_ts timestamp with time zone NOT NULL,
    confidence_n bigint NOT NULL,
    confidence_sum double precision,
    confidence_min double precision,
    confidence_max double precision,
    confidence_last double precision,
    inference_ms_n bigint NOT NULL,
    inference_ms_sum double precision,
    inference_ms_min double precision,
    inference_ms_max double precision,
    inference_ms_last double precision,
    defect_count_n bigint NOT NULL,
    defect_count_sum double precision,
    defect_count_min double precision,
    defect_count_max double precision,
    defect_count_last double precision,
    passed_n bigint NOT NULL
);


ALTER TABLE public.rollup_inspection_1m OWNER TO factory5g;

--
-- Name: rollup_link_1h; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.rollup_link_1h (
    bucket timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    n bigint NOT NULL,
    last_ts timestamp with time zone NOT NULL,
    rsrp_n bigint NOT NULL,
    rsrp_sum double precision,
    rsrp_min double precision,
    rsrp_max double precision,
    rsrp_last double precision,
    sinr_n bigint NOT NULL,
    sinr_sum double precision,
    sinr_min double precision,
    sinr_max double precision,
    sinr_last double precision,
    latency_ms_n bigint NOT NULL,
    latency_ms_sum double precision,
    latency_ms_min double precision,
    latency_ms_max double precision,
    latency_ms_last double precision,
    rsrq_n bigint NOT NULL,
    rsrq_sum double precision,
    rsrq_min double precision,
    rsrq_max double precision,
    rsrq_last double precision,
    jitter_ms_n bigint NOT NULL,
    jitter_ms_sum double precision,
    jitter_ms_min double precision,
    jitter_ms_max double precision,
    jitter_ms_last double precision,
    loss_pct_n bigint NOT NULL,
    loss_pct_sum double precision,
    loss_pct_min double precision,
    loss_pct_max double precision,
    loss_pct_last double precision,
    ul_mbps_n bigint NOT NULL,
    ul_mbps_sum double precision,
    ul_mbps_min double precision,
    ul_mbps_max double precision,
    ul_mbps_last double precision,
    dl_mbps_n bigint NOT NULL,
    dl_mbps_sum double precision,
    dl_mbps_min double precision,
    dl_mbps_max double precision,
    dl_mbps_last double precision,
    rsrp_b0 bigint NOT NULL,
    rsrp_b1 bigint NOT NULL,
    rsrp_b2 bigint NOT NULL,
    rsrp_b3 bigint NOT NULL,
    sinr_b0 bigint NOT NULL,
    sinr_b1 bigint NOT NULL,
    sinr_b2 bigint NOT NULL,
    sinr_b3 bigint NOT NULL,
    lat_h00 bigint NOT NULL,
    lat_h01 bigint NOT NULL,
    lat_h02 bigint NOT NULL,
    lat_h03 bigint NOT NULL,
    lat_h04 bigint NOT NULL,
    lat_h05 bigint NOT NULL,
    lat_h06 bigint NOT NULL,
    lat_h07 bigint NOT NULL,
    lat_h08 bigint NOT NULL,
    lat_h09 bigint NOT NULL,
    lat_h10 bigint NOT NULL,
    lat_h11 bigint NOT NULL,
    lat_h12 bigint NOT NULL,
    lat_h13 bigint NOT NULL,
    lat_h14 bigint NOT NULL,
    lat_h15 bigint NOT NULL,
    lat_h16 bigint NOT NULL,
    lat_h17 bigint NOT NULL,
    lat_h18 bigint NOT NULL,
    lat_h19 bigint NOT NULL,
    lat_h20 bigint NOT NULL,
    lat_h21 bigint NOT NULL,
    lat_h22 bigint NOT NULL,
    lat_h23 bigint NOT NULL,
    lat_h24 bigint NOT NULL,
    lat_h25 bigint NOT NULL,
    lat_h26 bigint NOT NULL,
    lat_h27 bigint NOT NULL,
    lat_h28 bigint NOT NULL,
    lat_h29 bigint NOT NULL,
    lat_h30 bigint NOT NULL
);


ALTER TABLE public.rollup_link_1h OWNER TO factory5g;

--
-- Name: rollup_link_1m; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.rollup_link_1m (
    bucket timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    n bigint NOT NULL,
    last_ts timestamp with time zone NOT NULL,
    rsrp_n bigint NOT NULL,
    rsrp_sum double precision,
    rsrp_min double precision,
    rsrp_max double precision,
    rsrp_last double precision,
    sinr_n bigint NOT NULL,
    sinr_sum double precision,
    sinr_min double precision,
    sinr_max double precision,
    sinr_last double precision,
    latency_ms_n bigint NOT NULL,
    latency_ms_sum double precision,
    latency_ms_min double precision,
    latency_ms_max double precision,
    latency_ms_last double precision,
    rsrq_n bigint NOT NULL,
    rsrq_sum double precision,
    rsrq_min double precision,
    rsrq_max double precision,
    rsrq_last double precision,
    jitter_ms_n bigint NOT NULL,
    jitter_ms_sum double precision,
    jitter_ms_min double precision,
    jitter_ms_max double precision,
    jitter_ms_last double precision,
    loss_pct_n bigint NOT NULL,
    loss_pct_sum double precision,
    loss_pct_min double precision,
    loss_pct_max double precision,
    loss_pct_last double precision,
    ul_mbps_n bigint NOT NULL,
    ul_mbps_sum double precision,
    ul_mbps_min double precision,
    ul_mbps_max double precision,
    ul_mbps_last double precision,
    dl_mbps_n bigint NOT NULL,
    dl_mbps_sum double precision,
    dl_mbps_min double precision,
    dl_mbps_max double precision,
    dl_mbps_last double precision,
    rsrp_b0 bigint NOT NULL,
    rsrp_b1 bigint NOT NULL,
    rsrp_b2 bigint NOT NULL,
    rsrp_b3 bigint NOT NULL,
    sinr_b0 bigint NOT NULL,
    sinr_b1 bigint NOT NULL,
    sinr_b2 bigint NOT NULL,
    sinr_b3 bigint NOT NULL,
    lat_h00 bigint NOT NULL,
    lat_h01 bigint NOT NULL,
    lat_h02 bigint NOT NULL,
    lat_h03 bigint NOT NULL,
    lat_h04 bigint NOT NULL,
    lat_h05 bigint NOT NULL,
    lat_h06 bigint NOT NULL,
    lat_h07 bigint NOT NULL,
    lat_h08 bigint NOT NULL,
    lat_h09 bigint NOT NULL,
    lat_h10 bigint NOT NULL,
    lat_h11 bigint NOT NULL,
    lat_h12 bigint NOT NULL,
    lat_h13 bigint NOT NULL,
    lat_h14 bigint NOT NULL,
    lat_h15 bigint NOT NULL,
    lat_h16 bigint NOT NULL,
    lat_h17 bigint NOT NULL,
    lat_h18 bigint NOT NULL,
    lat_h19 bigint NOT NULL,
    lat_h20 bigint NOT NULL,
    lat_h21 bigint NOT NULL,
    lat_h22 bigint NOT NULL,
    lat_h23 bigint NOT NULL,
    lat_h24 bigint NOT NULL,
    lat_h25 bigint NOT NULL,
    lat_h26 bigint NOT NULL,
    lat_h27 bigint NOT NULL,
    lat_h28 bigint NOT NULL,
    lat_h29 bigint NOT NULL,
    lat_h30 bigint NOT NULL
);


ALTER TABLE public.rollup_link_1m OWNER TO factory5g;

--
-- Name: rollup_telemetry_1h; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.rollup_telemetry_1h (
    bucket timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    metric text NOT NULL,
    n bigint NOT NULL,
    last_ts timestamp with time zone NOT NULL,
    value_n bigint NOT NULL,
    value_sum double precision,
    value_min double precision,
    value_max double precision,
    value_last double precision
);


ALTER TABLE public.rollup_telemetry_1h OWNER TO factory5g;

--
-- Name: rollup_telemetry_1m; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.rollup_telemetry_1m (
    bucket timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    metric text NOT NULL,
    n bigint NOT NULL,
    last_ts timestamp with time zone NOT NULL,
    value_n bigint NOT NULL,
    value_sum double precision,
    value_min double precision,
    value_max double precision,
    value_last double precision
);


ALTER TABLE public.rollup_telemetry_1m OWNER TO factory5g;

--
-- Name: rollup_watermarks; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.rollup_watermarks (
    spec text NOT NULL,
    resolution text NOT NULL,
    watermark timestamp with time zone NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE public.rollup_watermarks OWNER TO factory5g;

--
-- Name: telemetry; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.telemetry (
    ts timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    seq bigint NOT NULL,
    metric text NOT NULL,
    value double precision NOT NULL,
    received_at timestamp with time zone NOT NULL
);


ALTER TABLE public.telemetry OWNER TO factory5g;

--
-- Name: telemetry_text; Type: TABLE; Schema: public; Owner: factory5g
--

CREATE TABLE public.telemetry_text (
    ts timestamp with time zone NOT NULL,
    project_id text NOT NULL,
    device_id text NOT NULL,
    seq bigint NOT NULL,
    metric text NOT NULL,
    value text NOT NULL,
    received_at timestamp with time zone NOT NULL
);


ALTER TABLE public.telemetry_text OWNER TO factory5g;

--
-- Name: alarms id; Type: DEFAULT; Schema: public; Owner: factory5g
--

ALTER TABLE ONLY public.alarms ALTER COLUMN id SET DEFAULT nextval('public.alarms_id_seq'::regclass);


--
-- Name: api_key_events id; Type: DEFAULT; Schema: public; Owner: factory5g
--

ALTER TABLE ONLY public.api_key_events ALTER COLUMN id SET DEFAULT nextval('public.api_key_events_id_seq'::regclass);


--
-- Name: alarms alarms_pkey; Type: CONSTRAINT; Schema: public; Owner: factory5g
--

ALTER TABLE ONLY public.alarms
    ADD CONSTRAINT alarms_pkey PRIMARY KEY (id);


--
-- Name: alembic_version alembic_version_pkc; Type: CONSTRAINT; Schema: public; Owner: factory5g
--

ALTER TABLE ONLY public.alembic_version
    ADD CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num);


--
-- Name: api_key_events api_key_events_pkey; Type: CONSTRAINT; Schema: public; Owner: factory5g
--

ALTER TABLE ONLY public.api_key_events
    ADD CONSTRAINT api_key_events_pkey PRIMARY KEY (id);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: factory5g
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (prefix);


--
-- Name: devices devices_pkey; Type: CONSTRAINT; Schema: public; Owner: factory5g
--

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_pkey PRIMARY KEY (project_id, device_id);


--
-- Name: projects projects_pkey; Type: CONSTRAINT; Schema: public; Owner: factory5g
--

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_pkey PRIMARY KEY (id);


--
-- Name: rollup_watermarks rollup_watermarks_pkey; Type: CONSTRAINT; Schema: public; Owner: factory5g
--

ALTER TABLE ONLY public.rollup_watermarks
    ADD CONSTRAINT rollup_watermarks_pkey PRIMARY KEY (spec, resolution);


--
-- Name: agv_status_ts_idx; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX agv_status_ts_idx ON public.agv_status USING btree (ts DESC);


--
-- Name: alarm_events_ts_idx; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX alarm_events_ts_idx ON public.alarm_events USING btree (ts DESC);


--
-- Name: dead_letters_received_at_idx; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX dead_letters_received_at_idx ON public.dead_letters USING btree (received_at DESC);


--
-- Name: inspections_ts_idx; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX inspections_ts_idx ON public.inspections USING btree (ts DESC);


--
-- Name: ix_alarm_events_alarm; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_alarm_events_alarm ON public.alarm_events USING btree (alarm_id, ts);


--
-- Name: ix_alarms_device_rule; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_alarms_device_rule ON public.alarms USING btree (project_id, device_id, rule);


--
-- Name: ix_alarms_project_opened; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_alarms_project_opened ON public.alarms USING btree (project_id, opened_at);


--
-- Name: ix_dead_letters_device; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_dead_letters_device ON public.dead_letters USING btree (project_id, device_id, received_at);


--
-- Name: ix_dead_letters_reason; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_dead_letters_reason ON public.dead_letters USING btree (reason, received_at);


--
-- Name: ix_devices_project_kind; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_devices_project_kind ON public.devices USING btree (project_id, kind);


--
-- Name: ix_inspections_project_ts; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_inspections_project_ts ON public.inspections USING btree (project_id, ts DESC);


--
-- Name: ix_rollup_agv_1h_project_bucket; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_rollup_agv_1h_project_bucket ON public.rollup_agv_1h USING btree (project_id, bucket);


--
-- Name: ix_rollup_agv_1m_project_bucket; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_rollup_agv_1m_project_bucket ON public.rollup_agv_1m USING btree (project_id, bucket);


--
-- Name: ix_rollup_defects_1h_project_bucket; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_rollup_defects_1h_project_bucket ON public.rollup_defects_1h USING btree (project_id, bucket);


--
-- Name: ix_rollup_defects_1m_project_bucket; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_rollup_defects_1m_project_bucket ON public.rollup_defects_1m USING btree (project_id, bucket);


--
-- Name: ix_rollup_inspection_1h_project_bucket; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_rollup_inspection_1h_project_bucket ON public.rollup_inspection_1h USING btree (project_id, bucket);


--
-- Name: ix_rollup_inspection_1m_project_bucket; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_rollup_inspection_1m_project_bucket ON public.rollup_inspection_1m USING btree (project_id, bucket);


--
-- Name: ix_rollup_link_1h_project_bucket; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_rollup_link_1h_project_bucket ON public.rollup_link_1h USING btree (project_id, bucket);


--
-- Name: ix_rollup_link_1m_project_bucket; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_rollup_link_1m_project_bucket ON public.rollup_link_1m USING btree (project_id, bucket);


--
-- Name: ix_rollup_telemetry_1h_project_bucket; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_rollup_telemetry_1h_project_bucket ON public.rollup_telemetry_1h USING btree (project_id, bucket);


--
-- Name: ix_rollup_telemetry_1m_project_bucket; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX ix_rollup_telemetry_1m_project_bucket ON public.rollup_telemetry_1m USING btree (project_id, bucket);


--
-- Name: link_kpis_ts_idx; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX link_kpis_ts_idx ON public.link_kpis USING btree (ts DESC);


--
-- Name: telemetry_ts_idx; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE INDEX telemetry_ts_idx ON public.telemetry USING btree (ts DESC);


--
-- Name: uq_agv_status_key; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_agv_status_key ON public.agv_status USING btree (project_id, device_id, ts, seq);


--
-- Name: uq_alarms_active; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_alarms_active ON public.alarms USING btree (project_id, device_id, rule) WHERE (state <> 'cleared'::text);


--
-- Name: uq_inspections_key; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_inspections_key ON public.inspections USING btree (project_id, device_id, ts, seq);


--
-- Name: uq_link_kpis_key; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_link_kpis_key ON public.link_kpis USING btree (project_id, device_id, ts, seq);


--
-- Name: uq_rollup_agv_1h; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_rollup_agv_1h ON public.rollup_agv_1h USING btree (project_id, device_id, bucket);


--
-- Name: uq_rollup_agv_1m; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_rollup_agv_1m ON public.rollup_agv_1m USING btree (project_id, device_id, bucket);


--
-- Name: uq_rollup_defects_1h; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_rollup_defects_1h ON public.rollup_defects_1h USING btree (project_id, device_id, defect_type, bucket);


--
-- Name: uq_rollup_defects_1m; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_rollup_defects_1m ON public.rollup_defects_1m USING btree (project_id, device_id, defect_type, bucket);


--
-- Name: uq_rollup_inspection_1h; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_rollup_inspection_1h ON public.rollup_inspection_1h USING btree (project_id, device_id, bucket);


--
-- Name: uq_rollup_inspection_1m; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_rollup_inspection_1m ON public.rollup_inspection_1m USING btree (project_id, device_id, bucket);


--
-- Name: uq_rollup_link_1h; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_rollup_link_1h ON public.rollup_link_1h USING btree (project_id, device_id, bucket);


--
-- Name: uq_rollup_link_1m; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_rollup_link_1m ON public.rollup_link_1m USING btree (project_id, device_id, bucket);


--
-- Name: uq_rollup_telemetry_1h; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_rollup_telemetry_1h ON public.rollup_telemetry_1h USING btree (project_id, device_id, metric, bucket);


--
-- Name: uq_rollup_telemetry_1m; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_rollup_telemetry_1m ON public.rollup_telemetry_1m USING btree (project_id, device_id, metric, bucket);


--
-- Name: uq_telemetry_key; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_telemetry_key ON public.telemetry USING btree (project_id, device_id, metric, ts, seq);


--
-- Name: uq_telemetry_text_key; Type: INDEX; Schema: public; Owner: factory5g
--

CREATE UNIQUE INDEX uq_telemetry_text_key ON public.telemetry_text USING btree (project_id, device_id, metric, ts, seq);


--
-- Name: api_keys api_keys_audit; Type: TRIGGER; Schema: public; Owner: factory5g
--

CREATE TRIGGER api_keys_audit AFTER INSERT OR DELETE OR UPDATE ON public.api_keys FOR EACH ROW EXECUTE FUNCTION public.api_key_audit();


--
-- Name: agv_status ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: factory5g
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.agv_status FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();


--
-- Name: alarm_events ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: factory5g
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.alarm_events FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();


--
-- Name: dead_letters ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: factory5g
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.dead_letters FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();


--
-- Name: inspections ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: factory5g
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.inspections FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();


--
-- Name: link_kpis ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: factory5g
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.link_kpis FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();


--
-- Name: telemetry ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: factory5g
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.telemetry FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();


--
-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: factory5g
--

GRANT USAGE ON SCHEMA public TO factory5g_ingest;
GRANT USAGE ON SCHEMA public TO factory5g_rules;
GRANT USAGE ON SCHEMA public TO factory5g_api;
GRANT USAGE ON SCHEMA public TO factory5g_simulator;


--
-- Name: FUNCTION api_key_admin(token text); Type: ACL; Schema: public; Owner: factory5g
--

REVOKE ALL ON FUNCTION public.api_key_admin(token text) FROM PUBLIC;


--
-- Name: FUNCTION api_key_audit(); Type: ACL; Schema: public; Owner: factory5g
--

REVOKE ALL ON FUNCTION public.api_key_audit() FROM PUBLIC;


--
-- Name: FUNCTION api_key_bootstrap(token text, key_name text); Type: ACL; Schema: public; Owner: factory5g
--

REVOKE ALL ON FUNCTION public.api_key_bootstrap(token text, key_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.api_key_bootstrap(token text, key_name text) TO factory5g_api;


--
-- Name: TABLE api_keys; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT ON TABLE public.api_keys TO factory5g_api;


--
-- Name: FUNCTION api_key_create(actor_token text, key_prefix text, key_hash text, key_name text, key_scope text, key_projects text[]); Type: ACL; Schema: public; Owner: factory5g
--

REVOKE ALL ON FUNCTION public.api_key_create(actor_token text, key_prefix text, key_hash text, key_name text, key_scope text, key_projects text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.api_key_create(actor_token text, key_prefix text, key_hash text, key_name text, key_scope text, key_projects text[]) TO factory5g_api;


--
-- Name: FUNCTION api_key_revoke(actor_token text, key_prefix text); Type: ACL; Schema: public; Owner: factory5g
--

REVOKE ALL ON FUNCTION public.api_key_revoke(actor_token text, key_prefix text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.api_key_revoke(actor_token text, key_prefix text) TO factory5g_api;


--
-- Name: TABLE agv_status; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT ON TABLE public.agv_status TO factory5g_ingest;
GRANT SELECT ON TABLE public.agv_status TO factory5g_rules;
GRANT SELECT ON TABLE public.agv_status TO factory5g_api;


--
-- Name: TABLE alarm_events; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,UPDATE ON TABLE public.alarm_events TO factory5g_rules;
GRANT SELECT,INSERT ON TABLE public.alarm_events TO factory5g_api;


--
-- Name: TABLE alarms; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,UPDATE ON TABLE public.alarms TO factory5g_rules;
GRANT SELECT,UPDATE ON TABLE public.alarms TO factory5g_api;


--
-- Name: SEQUENCE alarms_id_seq; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,USAGE ON SEQUENCE public.alarms_id_seq TO factory5g_ingest;
GRANT SELECT,USAGE ON SEQUENCE public.alarms_id_seq TO factory5g_rules;
GRANT SELECT,USAGE ON SEQUENCE public.alarms_id_seq TO factory5g_api;


--
-- Name: TABLE alembic_version; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT ON TABLE public.alembic_version TO factory5g_api;


--
-- Name: TABLE api_key_events; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT ON TABLE public.api_key_events TO factory5g_api;


--
-- Name: TABLE dead_letters; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT ON TABLE public.dead_letters TO factory5g_ingest;
GRANT SELECT ON TABLE public.dead_letters TO factory5g_api;


--
-- Name: TABLE devices; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,UPDATE ON TABLE public.devices TO factory5g_ingest;
GRANT SELECT ON TABLE public.devices TO factory5g_rules;
GRANT SELECT ON TABLE public.devices TO factory5g_api;


--
-- Name: TABLE inspections; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT ON TABLE public.inspections TO factory5g_ingest;
GRANT SELECT ON TABLE public.inspections TO factory5g_rules;
GRANT SELECT ON TABLE public.inspections TO factory5g_api;


--
-- Name: TABLE link_kpis; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT ON TABLE public.link_kpis TO factory5g_ingest;
GRANT SELECT ON TABLE public.link_kpis TO factory5g_rules;
GRANT SELECT ON TABLE public.link_kpis TO factory5g_api;


--
-- Name: TABLE projects; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT ON TABLE public.projects TO factory5g_ingest;
GRANT SELECT ON TABLE public.projects TO factory5g_rules;
GRANT SELECT,INSERT,UPDATE ON TABLE public.projects TO factory5g_api;
GRANT SELECT,INSERT,UPDATE ON TABLE public.projects TO factory5g_simulator;


--
-- Name: TABLE rollup_agv_1h; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rollup_agv_1h TO factory5g_api;


--
-- Name: TABLE rollup_agv_1m; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rollup_agv_1m TO factory5g_api;


--
-- Name: TABLE rollup_defects_1h; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rollup_defects_1h TO factory5g_api;


--
-- Name: TABLE rollup_defects_1m; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rollup_defects_1m TO factory5g_api;


--
-- Name: TABLE rollup_inspection_1h; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rollup_inspection_1h TO factory5g_api;


--
-- Name: TABLE rollup_inspection_1m; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rollup_inspection_1m TO factory5g_api;


--
-- Name: TABLE rollup_link_1h; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rollup_link_1h TO factory5g_api;


--
-- Name: TABLE rollup_link_1m; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rollup_link_1m TO factory5g_api;


--
-- Name: TABLE rollup_telemetry_1h; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rollup_telemetry_1h TO factory5g_api;


--
-- Name: TABLE rollup_telemetry_1m; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rollup_telemetry_1m TO factory5g_api;


--
-- Name: TABLE rollup_watermarks; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rollup_watermarks TO factory5g_api;


--
-- Name: TABLE telemetry; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT,INSERT ON TABLE public.telemetry TO factory5g_ingest;
GRANT SELECT ON TABLE public.telemetry TO factory5g_rules;
GRANT SELECT ON TABLE public.telemetry TO factory5g_api;


--
-- Name: TABLE telemetry_text; Type: ACL; Schema: public; Owner: factory5g
--

GRANT SELECT ON TABLE public.telemetry_text TO factory5g_api;
GRANT SELECT,INSERT ON TABLE public.telemetry_text TO factory5g_ingest;


--
-- Name: DEFAULT PRIVILEGES FOR TABLES; Type: DEFAULT ACL; Schema: public; Owner: factory5g
--

ALTER DEFAULT PRIVILEGES FOR ROLE factory5g IN SCHEMA public GRANT SELECT ON TABLES  TO factory5g_api;


--
-- PostgreSQL database dump complete
--


