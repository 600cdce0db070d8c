from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from api.deps import TemporalDep
from api.errors import responses

router = APIRouter(tags=["health"])


@router.get("/healthz", responses=responses(503, said={503: "Temporal is unreachable"}))
async def healthz(client: TemporalDep) -> dict[str, str]:
    """Healthy when Temporal answers."""
    try:
        await client.service_client.check_health()
    except Exception as err:  # any failure to reach Temporal is unhealthy
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"Temporal unreachable: {type(err).__name__}"
        ) from None
    return {"status": "ok", "temporal": "ok"}
