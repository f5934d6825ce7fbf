"""The codec endpoint, mounted in the web service: the Temporal Web UI and CLI call it to show
the payloads that ``SEBAYA_PAYLOAD_KEYS`` encrypts (``docs/security.md``).

The protocol itself lives in :mod:`sebaya.codec_server`; this router only decides who may
reach it. Decoding shows participants' goals and notes, so only coordinators may call it (an
API token: ``temporal workflow show --codec-endpoint .../api/v1/codec --codec-auth "Bearer ..."``);
the browser's CORS preflight carries no credentials and is answered for the origins in
``SEBAYA_CODEC_CORS_ORIGINS`` only. Without payload keys nothing is encrypted and the
endpoint answers 404.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from temporalio.converter import PayloadCodec

from sebaya.codec_server import handle
from web.deps import PUBLIC, CoordinatorDep, Services, ServicesDep
from web.problems import Problem

router = APIRouter(prefix="/codec", include_in_schema=False)

Operation = Literal["decode", "encode"]


def _codec(svc: Services) -> PayloadCodec:
    codec = svc.client.data_converter.payload_codec
    if codec is None:
        raise Problem(404, "codec_not_configured",
                      "payloads are not encrypted here (SEBAYA_PAYLOAD_KEYS is not set)")
    return codec


async def _answer(request: Request, svc: Services, operation: str) -> Response:
    status, headers, body = await handle(
        request.method, f"/{operation}", dict(request.headers), await request.body(),
        codec=_codec(svc), allowed_origins=svc.settings.codec_cors_origins)
    return Response(body, status_code=status, headers=headers)


@router.post("/{operation}")
async def codec(operation: Operation, request: Request, svc: ServicesDep,
                _who: CoordinatorDep) -> Response:
    return await _answer(request, svc, operation)


@router.options("/{operation}", dependencies=[Depends(PUBLIC)])
async def preflight(operation: Operation, request: Request, svc: ServicesDep) -> Response:
    return await _answer(request, svc, operation)
