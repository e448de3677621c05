"""AGV floor maps: the map an AGV position refers to, and each map's plan and zones.

VDA 5050 positions carry `agvPosition.mapId`: x and y mean nothing without it once a plant
has two halls. `agv_status.map_id` keeps it (NULL when the AGV did not say: a native AGV
with one map, or no position at all). Adding a nullable column without a default only
changes the catalogue, also on a hypertable.

`floor_maps` holds per project and map the floor-plan image (PNG or JPEG, checked by the
API before it is stored), the extent in metres the image covers, so positions overlay it,
and the named zones (polygons in map metres). It is written by administrators through the
API only: the API role may read and write it, no other role sees it.

Revision ID: 0014_floor_maps
Revises: 0011_effective_rules
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0014_floor_maps"
down_revision = "0011_effective_rules"
branch_labels = None
depends_on = None

_UPGRADE = [
    "ALTER TABLE agv_status ADD COLUMN IF NOT EXISTS map_id text",
    """
    CREATE TABLE IF NOT EXISTS floor_maps (
        project_id text NOT NULL,
        map_id text NOT NULL,
        x0 double precision,
        y0 double precision,
        x1 double precision,
        y1 double precision,
        image bytea,
        image_type text CHECK (image_type IN ('image/png', 'image/jpeg')),
        zones jsonb NOT NULL DEFAULT '[]'::jsonb,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (project_id, map_id),
        CHECK ((image IS NULL) = (image_type IS NULL)),
        CHECK (x0 IS NULL OR (x1 > x0 AND y1 > y0))
    )
    """,
    "DO $$ BEGIN "
    "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factory5g_api') THEN "
    "CREATE ROLE factory5g_api NOLOGIN; END IF; "
    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    "REVOKE ALL ON floor_maps FROM factory5g_api",
    "GRANT SELECT, INSERT, UPDATE ON floor_maps TO factory5g_api",
]

_DOWNGRADE = [
    "DROP TABLE IF EXISTS floor_maps",
    "ALTER TABLE agv_status DROP COLUMN IF EXISTS map_id",
]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
