"""One generated sync given to many tenants: a bulk template's frames with the values that name the
template replaced by the tenant's own (docs/simulator.md, "Bulk mode").

A world writes its tenant id into text in three ways: the GitHub organisation (repository names,
URLs, the team's email domain; the Shopify shop URL has the same form), the Shopify vendor name, and
the Google Analytics property id (from the id's hash). Everything else (ids, emails of customers,
amounts) is a function of the world alone, so tenants sharing a template share it: their keys are
(tenant_id, id), so the same ids under different tenants are different records.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tenantpulse.simulator.github import org_name
from tenantpulse.simulator.google_analytics import property_id
from tenantpulse.simulator.shopify import vendor_name
from tenantpulse.simulator.world import stable_hash
from tenantpulse.sources.contracts import STREAMS_BY_NAME
from tenantpulse.sources.raw_files import ParallelFiles
from tenantpulse.sources.raw_table_ddl import (
    Rewrite,
    StagedFrame,
    drop_staged,
    stage_raw_frame,
    write_staged_frame,
)
from tenantpulse.warehouse import Connection

PROPERTY_ID = "property_id"


def _names(tenant_id: str) -> tuple[str, str]:
    return org_name(tenant_id), vendor_name(tenant_id)


def naming_columns(frame: pd.DataFrame, world_id: str) -> tuple[str, ...]:
    """The frame's text columns that name the world: `property_id`, and those holding its GitHub
    organisation or Shopify vendor name in some value."""
    names = _names(world_id)
    found = []
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        text = "\0".join(v for v in frame[column].to_numpy() if isinstance(v, str))
        if column == PROPERTY_ID or any(name in text for name in names):
            found.append(column)
    return tuple(found)


@dataclass(frozen=True)
class TemplateSync:
    """A world's generated sync, staged once (sources.raw_table_ddl) and written under any tenant
    with the tenant's own names."""

    world_id: str
    staged: dict[str, StagedFrame]  # stream name -> its rows
    naming: dict[str, tuple[str, ...]]  # stream name -> its columns that name the world

    @classmethod
    def stage(cls, conn: Connection, frames: dict[str, pd.DataFrame], world_id: str):
        """Stage the world's frames; on Postgres commit before writing (a rollback keeps them)
        and `drop` them when done."""
        staged, naming = {}, {}
        try:
            for stream, frame in frames.items():
                naming[stream] = naming_columns(frame, world_id)
                staged[stream] = stage_raw_frame(conn, STREAMS_BY_NAME[stream], frame)
        except BaseException:
            for done in staged.values():
                drop_staged(conn, done)
            raise
        return cls(world_id, staged, naming)

    def rewrite(self, stream: str, tenant_id: str) -> Rewrite:
        """How the tenant's copy of the stream differs: the world's names replaced by its own."""
        columns = self.naming[stream]
        if tenant_id == self.world_id or not columns:
            return Rewrite()
        return Rewrite(
            columns=tuple(c for c in columns if c != PROPERTY_ID),
            pairs=tuple(zip(_names(self.world_id), _names(tenant_id), strict=True)),
            constants=(
                {PROPERTY_ID: property_id(stable_hash(tenant_id))} if PROPERTY_ID in columns else {}
            ),
        )

    def write(
        self, conn: Connection, tenant_id: str, files: ParallelFiles | None = None
    ) -> dict[str, int]:
        """Write the sync as the tenant's (DuckDB: by `files`, if given); the rows per stream."""
        return {
            stream: write_staged_frame(
                conn, tenant_id, staged, self.rewrite(stream, tenant_id), files
            )
            for stream, staged in self.staged.items()
        }

    def drop(self, conn: Connection) -> None:
        for staged in self.staged.values():
            drop_staged(conn, staged)
