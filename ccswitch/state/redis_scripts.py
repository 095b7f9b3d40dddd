"""The Lua scripts of the Redis store: every decision that reads and writes several keys,
each run atomically across nodes.

Each script's KEYS and ARGV are listed above it; the key names follow the layout in
:mod:`ccswitch.state.redis_store`, which registers the scripts.
"""

_BYTES_BEFORE = """
local function before(a, b)
  local n = math.min(#a, #b)
  for k = 1, n do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then return x < y end
  end
  return #a < #b
end
"""

# KEYS: presence, hold:<agent>, wait:<queue>, holds
# ARGV: prefix, agent, node, call, ttl_ms, busy_json, events, queue...
RESERVE = _BYTES_BEFORE + """
if redis.call('HGET', KEYS[1], ARGV[2]) ~= 'ready' then return {'not_ready'} end
local held = redis.call('GET', KEYS[2])
if held then return {'busy', held} end
local prefix, node, call = ARGV[1], ARGV[3], ARGV[4]
local me = node .. '/' .. call
local mine = redis.call('ZSCORE', KEYS[3], me)
local myscore = mine and tonumber(mine) or nil
local live = {}
live[node] = true
local best_score, best_call, best_member = nil, nil, nil
for i = 8, #ARGV do
  local key = prefix .. 'wait:' .. ARGV[i]
  local entries
  if mine then
    entries = redis.call('ZRANGEBYSCORE', key, '-inf', mine, 'WITHSCORES')
  else
    entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  end
  for j = 1, #entries, 2 do
    local member = entries[j]
    local score = tonumber(entries[j + 1])
    if best_score and score > best_score then break end
    local slash = string.find(member, '/', 1, true)
    if member ~= me and slash then
      local owner = string.sub(member, 1, slash - 1)
      local other = string.sub(member, slash + 1)
      local alive = live[owner]
      if alive == nil then
        alive = redis.call('EXISTS', prefix .. 'node:' .. owner) == 1
        live[owner] = alive
      end
      if not alive then
        redis.call('ZREM', key, member)
      elseif (not myscore) or score < myscore or before(other, call) then
        if (not best_score) or score < best_score
            or (score == best_score and before(other, best_call)) then
          best_score, best_call, best_member = score, other, member
        end
      end
    end
  end
end
if best_member then return {'older_caller', best_member} end
redis.call('SET', KEYS[2], me, 'PX', ARGV[5])
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[3], me)
redis.call('PUBLISH', ARGV[7], ARGV[6])
return {'granted'}
"""

# KEYS: hold:<agent>, holds   ARGV: "node/call", agent, events, free_json
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# KEYS: hold:<agent>   ARGV: "node/call", ttl_ms
REFRESH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS: holds   ARGV: prefix  -> {agent, holder, ...}; forgets agents without a hold
HOLDERS = """
local out = {}
for _, agent in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local holder = redis.call('GET', ARGV[1] .. 'hold:' .. agent)
  if holder then
    out[#out + 1] = agent
    out[#out + 1] = holder
  else
    redis.call('SREM', KEYS[1], agent)
  end
end
return out
"""

_IN_USE = """
local function in_use(prefix, vendor, node, nodes_key)
  local total = 0
  for _, n in ipairs(redis.call('SMEMBERS', nodes_key)) do
    local count = redis.call('SCARD', prefix .. 'chan:' .. vendor .. ':' .. n)
    if count == 0 then
      redis.call('SREM', nodes_key, n)
    elseif n == node or redis.call('EXISTS', prefix .. 'node:' .. n) == 1 then
      total = total + count
    end
  end
  return total
end
"""

# KEYS: chan-nodes:<vendor>, vendors, chan:<vendor>:<node>
# ARGV: prefix, vendor, node, call, max
ACQUIRE = _IN_USE + """
if redis.call('SISMEMBER', KEYS[3], ARGV[4]) == 1 then return 1 end
if in_use(ARGV[1], ARGV[2], ARGV[3], KEYS[1]) >= tonumber(ARGV[5]) then return 0 end
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

# KEYS: chan-nodes:<vendor>   ARGV: prefix, vendor, node
COUNT = _IN_USE + """
return in_use(ARGV[1], ARGV[2], ARGV[3], KEYS[1])
"""

# KEYS: records, recorded:<node>/<call>   ARGV: record json, maxlen, exact (0/1), dedup_ms
# A write that timed out may still be carried out, and its spooled copy replayed later:
# the marker makes the second append a no-op.
APPEND = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4]) then return 0 end
if ARGV[3] == '1' then
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'record', ARGV[1])
else
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'record', ARGV[1])
end
return 1
"""

# KEYS: queues, holds, vendors, synced:<node>   ARGV: prefix, node, hold_ttl_ms, json, token
# json: {"waiting": [[queue, call, "queued_at"]], "holds": [[agent, call]],
#        "channels": [[vendor, [call...]]]}
RESYNC = """
local prefix, node = ARGV[1], ARGV[2]
local mine = node .. '/'
local function owned(v) return string.sub(v, 1, #mine) == mine end
local data = cjson.decode(ARGV[4])
for _, q in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = prefix .. 'wait:' .. q
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if owned(m) then redis.call('ZREM', key, m) end
  end
  if redis.call('EXISTS', key) == 0 then redis.call('SREM', KEYS[1], q) end
end
for _, w in ipairs(data.waiting) do
  redis.call('ZADD', prefix .. 'wait:' .. w[1], w[3], mine .. w[2])
  redis.call('SADD', KEYS[1], w[1])
end
for _, agent in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = prefix .. 'hold:' .. agent
  local holder = redis.call('GET', key)
  if not holder then
    redis.call('SREM', KEYS[2], agent)
  elseif owned(holder) then
    redis.call('DEL', key)
    redis.call('SREM', KEYS[2], agent)
  end
end
for _, h in ipairs(data.holds) do
  if redis.call('SET', prefix .. 'hold:' .. h[1], mine .. h[2], 'NX', 'PX', ARGV[3]) then
    redis.call('SADD', KEYS[2], h[1])
  end
end
for _, v in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('DEL', prefix .. 'chan:' .. v .. ':' .. node)
  redis.call('SREM', prefix .. 'chan-nodes:' .. v, node)
end
for _, c in ipairs(data.channels) do
  if #c[2] > 0 then
    local key = prefix .. 'chan:' .. c[1] .. ':' .. node
    for _, call in ipairs(c[2]) do redis.call('SADD', key, call) end
    redis.call('SADD', prefix .. 'chan-nodes:' .. c[1], node)
    redis.call('SADD', KEYS[3], c[1])
  end
end
redis.call('SET', KEYS[4], ARGV[5])
return 1
"""
