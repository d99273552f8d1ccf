"""The HTTP side of webhook deliveries (dogsearch/watches/delivery.py decides what, when and how often): a POST to
the very address the target check resolved (no second lookup a rebinding DNS could answer otherwise), the URL's
host in the Host header and TLS name, no redirects, no proxies from the environment, and at most a bounded part
of the answer read, all within the attempt's time."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

from dogsearch.watches.targets import Target


class WebhookSender:
    def __init__(self, max_response_bytes: int = 65536) -> None:
        self.max_response_bytes = max_response_bytes
        # trust_env=False: an HTTP(S)_PROXY would connect to the name itself, around the address check
        self.client = httpx.AsyncClient(follow_redirects=False, trust_env=False)

    async def __call__(self, target: Target, body: bytes, headers: Mapping[str, str],
                       timeout_s: float) -> tuple[int | None, str | None]:
        url = httpx.URL(target.url)
        pinned = url.copy_with(host=target.address)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            # httpx's timeout bounds each read, not the whole: a receiver trickling a byte a second would hold the
            # attempt (and the deliveries waiting behind it) 18 hours
            async with asyncio.timeout(timeout_s), self.client.stream(
                    "POST", pinned, content=body, timeout=timeout_s, extensions=extensions,
                    headers={**headers, "Host": url.netloc.decode("ascii")}) as answer:
                read = 0
                async for chunk in answer.aiter_raw():  # drained up to the bound, so the connection can be reused
                    read += len(chunk)
                    if read >= self.max_response_bytes:
                        break
                status = answer.status_code
        except (httpx.TimeoutException, TimeoutError):
            return None, f"no answer within {timeout_s:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 300 <= status < 400:
            return status, f"HTTP {status}: redirects are not followed"
        return status, None if 200 <= status < 300 else f"HTTP {status}"

    async def aclose(self) -> None:
        await self.client.aclose()
