"""Dagster wiring only: each module turns one stage of the flow into assets, checks or sensors."""

import warnings

from dagster import BetaWarning, PreviewWarning

# observable_source_asset and backfill_policy are marked beta; the product relies on both
# knowingly, so their warnings would only bury the product's own output.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
