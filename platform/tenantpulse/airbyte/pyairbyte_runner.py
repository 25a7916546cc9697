"""Run by the PyAirbyte tool environment's Python, not imported by tenantpulse: PyAirbyte pins
pandas<3, duckdb==1.4.3 and sqlalchemy==2.0.43, which the project's own environment cannot hold.

Reads a request (JSON) on stdin, installs the connector into its own venv if needed (PyAirbyte does
that with uv, from PyPI), reads the selected streams, and writes per stream `<stream>.jsonl` (the
records with Airbyte's `_airbyte_*` fields) and `<stream>.schema.json` (JSON schema, primary key)
into the request's `out_dir`. Prints one JSON line: records per stream.
"""

import json
import signal
import sys
from pathlib import Path


def main() -> None:
    # An ignored SIGTERM is inherited through exec (Dagster's capture_interrupts leaves SIGTERM
    # ignored in a process started with SIGINT ignored, e.g. a background test run): the
    # connector's own worker pool stops its workers with SIGTERM, and source-faker's hung for
    # good when they ignored it. The connector starts with the default again.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import airbyte as ab

    request = json.load(sys.stdin)
    source = ab.get_source(
        request["connector"],
        config=request["config"],
        pip_url=request.get("pip_url"),
        install_root=Path(request["install_root"]),
        install_if_missing=True,
    )
    streams = request.get("streams") or source.get_available_streams()
    source.select_streams(streams)
    catalog = {s.stream.name: s for s in source.get_configured_catalog(streams=streams).streams}
    out_dir = Path(request["out_dir"])
    counts = {}
    for stream in streams:
        primary_key = [".".join(path) for path in (catalog[stream].primary_key or [])]
        (out_dir / f"{stream}.schema.json").write_text(
            json.dumps(
                {"json_schema": source.get_stream_json_schema(stream), "primary_key": primary_key}
            )
        )
        # list(): iterating PyAirbyte 0.71's LazyDataset with a plain for loop yielded no records.
        records = list(source.get_records(stream))
        with (out_dir / f"{stream}.jsonl").open("w") as lines:
            for record in records:
                lines.write(json.dumps(dict(record), default=str) + "\n")
        counts[stream] = len(records)
    print(json.dumps({"records": counts}))


if __name__ == "__main__":
    main()
