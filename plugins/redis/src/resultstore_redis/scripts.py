"""The Lua scripts that make each Redis operation one atomic round trip.

A stored result is one string value ``<state>\\0<payload>``: the state in
front lets the store script enforce "a ready state is final" inside Redis
without decoding the payload, and lets GET/MGET stay single commands.
"""

from __future__ import annotations

__all__ = ["CHORD_BODY_CLAIM", "CHORD_BODY_SENT", "CHORD_PART", "STORE"]

#: KEYS[1] result key. ARGV: value, state, ttl ms ("0" = keep), overwrite
#: ("1"/"0"), channel, tried before ("1"/"0"). Returns {stored 0/1, previous
#: state or false}. The announcement carries the stored value, so a waiter
#: needs no second read. On a call tried before, a ready value equal to
#: ARGV[1] is the call's own (an earlier try stored it and its reply was
#: lost): it is reported stored, previous unknown.
STORE = """
local current = redis.call('GET', KEYS[1])
local previous = false
if current then
  local cut = string.find(current, '\\0', 1, true)
  if cut then previous = string.sub(current, 1, cut - 1) end
  if ARGV[4] ~= '1' and (previous == 'SUCCESS' or previous == 'FAILURE'
                         or previous == 'REVOKED') then
    if ARGV[6] == '1' and current == ARGV[1] then return {1, false} end
    return {0, previous}
  end
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
end
redis.call('PUBLISH', ARGV[5], ARGV[1])
return {1, previous}
"""

#: KEYS: size key, parts hash, done key. ARGV: index, part payload, ttl ms
#: ("0" = keep), call token. The done key holds the token of the call that
#: completed the chord, so a retried completing call (its reply lost) is
#: still told it completed, and any other call never is.
#: Returns {status, added, received, size[, parts as field/value list]} with
#: status 1 = complete, 0 = recorded or duplicate, -1 = no size, -2 = bad index.
CHORD_PART = """
local size = redis.call('GET', KEYS[1])
if not size then return {-1, 0, 0, 0} end
size = tonumber(size)
local index = tonumber(ARGV[1])
if index == nil or index < 0 or index >= size then return {-2, 0, 0, size} end
local added = redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
local received = redis.call('HLEN', KEYS[2])
if ARGV[3] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
local done = redis.call('GET', KEYS[3])
if (not done and received == size and added == 1) or done == ARGV[4] then
  if not done then
    if ARGV[3] == '0' then
      redis.call('SET', KEYS[3], ARGV[4])
    else
      redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[3])
    end
  end
  return {1, added, received, size, redis.call('HGETALL', KEYS[2])}
end
return {0, added, received, size}
"""

#: KEYS: done key, body claim key, parts hash. ARGV: now (ms), lease (ms),
#: ttl ms ("0" = keep). The done key of a complete chord holds the token of
#: the call that completed it, or "sent" once its body was sent; the claim
#: key holds when the sending of the body was last claimed. Returns {0}:
#: nothing to do (open, unknown or sent), {1}: a claim stands (the first call
#: only records one), {2, parts as field/value list}: the caller has the claim.
CHORD_BODY_CLAIM = """
local done = redis.call('GET', KEYS[1])
if not done or done == 'sent' then return {0} end
local claimed = redis.call('GET', KEYS[2])
if claimed and tonumber(ARGV[1]) - tonumber(claimed) < tonumber(ARGV[2]) then return {1} end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[2], ARGV[1])
else
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
end
if not claimed then return {1} end
return {2, redis.call('HGETALL', KEYS[3])}
"""

#: KEYS: done key, body claim key. Marks a complete chord's body sent.
CHORD_BODY_SENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[1], 'sent', 'KEEPTTL')
  redis.call('DEL', KEYS[2])
end
return 1
"""
