"""Auditor API (read only; ids, never names or e-mails): a pairing's history, its replay
(optionally as of a moment), verification of the hash chains, and a cohort's bundle."""

from __future__ import annotations

import asyncio
import io
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from audit.bundle import export_bundle
from audit.history import PairingHistory, PairingNotFound, pairing_history
from audit.replay import ReplayResult, replay_pairing
from audit.verify import VerifyResult, verify
from domain.ids import cohort_stream, pairing_stream
from web.deps import ReaderDep, ServicesDep
from web.params import PathId, QueryId
from web.problems import Problem, not_found, problem_responses

router = APIRouter(prefix="/audit", tags=["auditor"])

ERRORS = problem_responses(401, 403, 404, 422, 503)


@router.get("/pairings/{pairing_id}/history", response_model=PairingHistory,
            responses=ERRORS, summary="A pairing's timeline and match provenance")
async def history(pairing_id: PathId, who: ReaderDep, svc: ServicesDep) -> PairingHistory:
    try:
        return await pairing_history(svc.store, pairing_id)
    except PairingNotFound as exc:
        raise not_found("pairing", pairing_id) from exc


@router.get("/pairings/{pairing_id}/replay", response_model=ReplayResult, responses=ERRORS,
            summary="Fold the pairing's events (as of a moment, when given)")
async def replay(pairing_id: PathId, who: ReaderDep, svc: ServicesDep,
                 as_of: datetime | None = None) -> ReplayResult:
    if as_of is not None and as_of.tzinfo is None:
        raise Problem(422, "invalid_request", "as_of needs a time zone (e.g. Z)", field="as_of")
    if not await svc.store.stream_version(pairing_stream(pairing_id)):
        raise not_found("pairing", pairing_id)
    return await replay_pairing(svc.store, pairing_id, as_of=as_of, client=None)


class Verification(BaseModel):
    ok: bool
    """Every chain checked is intact and nothing asked for is missing."""
    broken_streams: list[str]
    result: VerifyResult


@router.get("/verify", response_model=Verification, responses=ERRORS,
            summary="Verify the hash chain of a stream, a cohort, or everything")
async def verify_chains(who: ReaderDep, svc: ServicesDep, stream: QueryId = None,
                        cohort: QueryId = None) -> Verification:
    if stream is not None and cohort is not None:
        raise Problem(422, "invalid_request", "give a stream or a cohort, not both")
    result = await verify(svc.store, stream=stream, cohort=cohort)
    return Verification(ok=result.ok, broken_streams=result.broken_streams(), result=result)


@router.get("/cohorts/{cohort_id}/bundle", responses={
    **ERRORS, 200: {"content": {"application/zip": {}}, "description": "The bundle, zipped"}},
    summary="Export a cohort's evidence bundle (zip)")
async def bundle(cohort_id: PathId, who: ReaderDep, svc: ServicesDep) -> Response:
    if not await svc.store.stream_version(cohort_stream(cohort_id)):
        raise not_found("cohort", cohort_id)
    with tempfile.TemporaryDirectory(prefix="sebaya-bundle-") as tmp:
        out = Path(tmp) / cohort_id
        await export_bundle(svc.store, cohort_id, out, kind="cohort")
        data = await asyncio.to_thread(_zip, out, cohort_id)
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{cohort_id}-bundle.zip"'})


def _zip(folder: Path, name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{name}/{path.relative_to(folder)}")
    return buf.getvalue()
