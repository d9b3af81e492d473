"""The committed gRPC stubs match protos/skiff.proto (regenerate: python -m protos.generate)."""

from __future__ import annotations

from pathlib import Path

from protos.generate import PROTO_DIR, generate


def test_committed_stubs_are_up_to_date(tmp_path: Path) -> None:
    # No skip: grpcio-tools is in the test extras (pyproject.toml); missing, this fails with ImportError.
    import grpc_tools  # noqa: F401
    for fresh in generate(tmp_path):
        committed = PROTO_DIR / fresh.name
        assert committed.exists(), f"{committed} is missing; run python -m protos.generate"
        assert committed.read_text() == fresh.read_text(), (
            f"{committed.name} is stale: protos/skiff.proto changed; run python -m protos.generate")
