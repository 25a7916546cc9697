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
from functools import cached_property

import numpy as np
import pandas as pd

from tenantpulse.simulator.github import org_name
from tenantpulse.simulator.google_analytics import property_id
from tenantpulse.simulator.shopify import vendor_name
from tenantpulse.simulator.world import stable_hash

PROPERTY_ID = "property_id"


def _names(tenant_id: str) -> tuple[str, str]:
    return org_name(tenant_id), vendor_name(tenant_id)


def _names_any(values: np.ndarray, names: tuple[str, ...]) -> bool:
    return any(isinstance(v, str) and any(n in v for n in names) for v in values)


@dataclass(frozen=True)
class TenantRewrite:
    """A world's frames, to be given to the world's own tenant or to any other."""

    frames: dict[str, pd.DataFrame]
    world_id: str

    @cached_property
    def naming_columns(self) -> dict[str, tuple[str, ...]]:
        """Per stream, the text columns that name the world (found once, used for every tenant)."""
        names = _names(self.world_id)
        naming = {}
        for stream, frame in self.frames.items():
            columns = [
                column
                for column in frame.columns
                if frame[column].dtype == object
                and (column == PROPERTY_ID or _names_any(frame[column].to_numpy(), names))
            ]
            if columns:
                naming[stream] = tuple(columns)
        return naming

    def apply(self, tenant_id: str) -> dict[str, pd.DataFrame]:
        """The frames as the tenant's own: the world's names replaced by the tenant's."""
        if tenant_id == self.world_id:
            return self.frames
        pairs = list(zip(_names(self.world_id), _names(tenant_id), strict=True))
        prop = property_id(stable_hash(tenant_id))
        out = dict(self.frames)
        for stream, columns in self.naming_columns.items():
            frame = self.frames[stream]
            replaced = {}
            for column in columns:
                if column == PROPERTY_ID:
                    values = np.full(len(frame), prop, dtype=object)
                else:
                    values = frame[column].to_numpy(dtype=object)
                    for old, new in pairs:
                        values = [None if v is None else v.replace(old, new) for v in values]
                replaced[column] = pd.Series(values, index=frame.index, dtype=object)
            out[stream] = frame.assign(**replaced)
        return out
