"""Sticky canary cohorts in Envoy, hashed exactly like feature toggles.

A canary with `stickiness: {header: x-user-id}` (or a cookie) must put a user in the canary
when `shoal.toggles.hashing.bucket(value) <= weight`, the same test a toggle's 20 % rollout
uses, so one user sees one consistent world. Envoy's own `hash_policy` hashes with xxHash and
picks a weighted cluster from the hash modulo the weight total: a different function, so the
cohorts would disagree with the toggles. Instead:

1. a Lua HTTP filter on the Service's listener computes the bucket, murmur3_x86_32 of
   `":" + value` (seed 0) mod 100 + 1, exactly `bucket()`'s formula, and puts it in the
   request header `x-shoal-cohort` (a client-sent one is always removed first, so nobody
   can pick their cohort), then clears the route cache so routing sees the header;
2. the routes (RDS, so a weight change needs no listener change) send requests whose
   `x-shoal-cohort` is in [1, weight] to the canary (`range_match`), those with a bucket
   above the weight to the stable version, and requests without the header by weight.

The filter does not depend on the weight, so it only changes when stickiness is switched on
or off. The equivalence with `bucket()` is tested against a real Envoy
(tests/agent/envoy/test_cohort_envoy.py). LuaJIT numbers are doubles, so 32-bit multiplies
are split into 16-bit halves to stay exact.
"""

from __future__ import annotations

from typing import Any

COHORT_HEADER = "x-shoal-cohort"
_LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"

_MURMUR3 = r"""
local bit = require("bit")
local band, bor, bxor, lshift, rshift, rol, tobit =
  bit.band, bit.bor, bit.bxor, bit.lshift, bit.rshift, bit.rol, bit.tobit

local function mul32(a, b)
  local alo, ahi = band(a, 0xffff), rshift(a, 16)
  local blo, bhi = band(b, 0xffff), rshift(b, 16)
  return tobit(alo * blo + lshift(tobit(ahi * blo + alo * bhi), 16))
end

local C1, C2 = tobit(0xcc9e2d51), tobit(0x1b873593)

local function scramble(k)
  return mul32(rol(mul32(k, C1), 15), C2)
end

local function murmur3(s)
  local h, len = 0, #s
  local blocks = len - len % 4
  for i = 1, blocks, 4 do
    local b1, b2, b3, b4 = string.byte(s, i, i + 3)
    h = bxor(h, scramble(bor(b1, lshift(b2, 8), lshift(b3, 16), lshift(b4, 24))))
    h = tobit(mul32(rol(h, 13), 5) + 0xe6546b64)
  end
  local rem, k = len - blocks, 0
  if rem >= 3 then k = bxor(k, lshift(string.byte(s, blocks + 3), 16)) end
  if rem >= 2 then k = bxor(k, lshift(string.byte(s, blocks + 2), 8)) end
  if rem >= 1 then h = bxor(h, scramble(bxor(k, string.byte(s, blocks + 1)))) end
  h = bxor(h, len)
  h = mul32(bxor(h, rshift(h, 16)), tobit(0x85ebca6b))
  h = mul32(bxor(h, rshift(h, 13)), tobit(0xc2b2ae35))
  h = bxor(h, rshift(h, 16))
  if h < 0 then h = h + 4294967296 end
  return h
end
"""

_FROM_HEADER = """
local function sticky_value(headers)
  return headers:get("{name}")
end
"""

_FROM_COOKIE = """
local function sticky_value(headers)
  local cookies = headers:get("cookie")
  if cookies == nil then return nil end
  for pair in string.gmatch(cookies, "[^;]+") do
    local key, value = string.match(pair, "^%s*([^=]-)%s*=%s*(.-)%s*$")
    if key == "{name}" then return value end
  end
  return nil
end
"""

_ON_REQUEST = """
function envoy_on_request(handle)
  local headers = handle:headers()
  headers:remove("{cohort}")
  local value = sticky_value(headers)
  if value ~= nil then
    headers:add("{cohort}", tostring(murmur3(":" .. value) % 100 + 1))
  end
  handle:clearRouteCache()
end
"""


def lua_source(header: str | None = None, cookie: str | None = None) -> str:
    """The filter's Lua code for a sticky header or cookie (names are validated tokens)."""
    if (header is None) == (cookie is None):
        raise ValueError("give exactly one of header or cookie")
    if header is not None:
        source = _FROM_HEADER.replace("{name}", header.lower())
    else:
        source = _FROM_COOKIE.replace("{name}", str(cookie))
    return _MURMUR3 + source + _ON_REQUEST.replace("{cohort}", COHORT_HEADER)


def cohort_filter(source: tuple[str, str]) -> dict[str, Any]:
    """The HTTP filter entry for `source` = ("header", name) or ("cookie", name)."""
    kind, name = source
    code = lua_source(header=name) if kind == "header" else lua_source(cookie=name)
    return {
        "name": "envoy.filters.http.lua",
        "typed_config": {"@type": _LUA_TYPE, "default_source_code": {"inline_string": code}},
    }
