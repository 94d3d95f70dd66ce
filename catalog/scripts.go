package catalog

import "github.com/redis/go-redis/v9"

// luaPrelude holds the helpers every entity script shares, so that all of them encode
// relations, hash content and write changes the same way. The scripts derive the
// entity keys they touch from T (ARGV[1], "<prefix>:{<tenant>}"): every such key
// carries the tenant's hash tag, so on Redis Cluster they are all in the slot of the
// declared KEYS, which route the call. The outbox key is always passed in KEYS.
const luaPrelude = `
local US = '\31'
local EMPTY_HASH = redis.sha1hex('')

local function split(s, sep)
  local out, start = {}, 1
  while true do
    local i = string.find(s, sep, start, true)
    if not i then
      out[#out + 1] = string.sub(s, start)
      return out
    end
    out[#out + 1] = string.sub(s, start, i - 1)
    start = i + 1
  end
end

local function toMap(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function isMeta(k) return string.sub(k, 1, 1) == '_' end

-- relIDs returns the identifiers of an encoded relation value ("-", "=id", "[id US id").
local function relIDs(v)
  if not v then return {} end
  local c = string.sub(v, 1, 1)
  if c == '=' then return {string.sub(v, 2)} end
  if c == '[' and #v > 1 then return split(string.sub(v, 2), US) end
  return {}
end

-- without returns relation value v with identifier id removed (a single target becomes null).
local function without(v, id)
  local c = string.sub(v, 1, 1)
  if c == '=' then
    if string.sub(v, 2) == id then return '-' end
    return v
  end
  if c == '[' then
    local keep = {}
    for _, x in ipairs(relIDs(v)) do if x ~= id then keep[#keep + 1] = x end end
    return '[' .. table.concat(keep, US)
  end
  return v
end

-- contentHash hashes the content fields (every field not starting with "_") sorted by
-- name, each length-prefixed so that no two different field sets hash the same text.
local function contentHash(f)
  local names = {}
  for k, _ in pairs(f) do if not isMeta(k) then names[#names + 1] = k end end
  if #names == 0 then return EMPTY_HASH end
  table.sort(names)
  local parts = {}
  for _, k in ipairs(names) do
    local v = f[k]
    parts[#parts + 1] = #k .. ':' .. k .. #v .. ':' .. v
  end
  return redis.sha1hex(table.concat(parts))
end

-- call runs a variadic command in slices, since unpack has a stack limit.
local function callChunked(cmd, key, args, step)
  for s = 1, #args, step do
    redis.call(cmd, key, unpack(args, s, math.min(s + step - 1, #args)))
  end
end

local function flatten(t)
  local out = {}
  for k, v in pairs(t) do out[#out + 1] = k; out[#out + 1] = v end
  return out
end

-- jsonTime writes a stored ms timestamp as encoding/json writes msTime(ms): RFC 3339 in
-- UTC, the fraction without trailing zeros. Anything but an integer is Go's zero time,
-- which is what decodeEntity leaves for it. Most times of a call are its "now", so
-- they are formatted once per call.
local jsonTimes = {}
local function jsonTime(v)
  if type(v) ~= 'string' or not string.match(v, '^-?%d+$') then return '"0001-01-01T00:00:00Z"' end
  if jsonTimes[v] then return jsonTimes[v] end
  local ms = tonumber(v)
  local s = math.floor(ms / 1000)
  local frac = ms - s * 1000
  local days = math.floor(s / 86400)
  local sec = s - days * 86400
  -- Days since 1970-01-01 to a civil date (Howard Hinnant's days_from_civil, inverted).
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  local out = string.format('"%04d-%02d-%02dT%02d:%02d:%02d', y, m, d,
    math.floor(sec / 3600), math.floor((sec % 3600) / 60), sec % 60)
  if frac > 0 then out = out .. (string.gsub(string.format('.%03d', frac), '0+$', '')) end
  out = out .. 'Z"'
  jsonTimes[v] = out
  return out
end

-- entityJSON encodes an entity's hash fields as the JSON of Entity (catalog.go), with
-- its omitempty rules: decoded by decodeChange it is what decodeEntity makes of the
-- same fields. Property values and the team are stored as JSON and go in verbatim, so
-- numbers stay exact.
local function entityJSON(f)
  local props, rels = {}, {}
  for k, _ in pairs(f) do
    local p = string.sub(k, 1, 2)
    if p == 'p:' then props[#props + 1] = k elseif p == 'r:' then rels[#rels + 1] = k end
  end
  table.sort(props)
  table.sort(rels)
  local out = {'{"identifier":', cjson.encode(f['_id'] or ''), ',"blueprint":', cjson.encode(f['_bp'] or '')}
  local function opt(name, v)
    if v and v ~= '' then out[#out + 1] = ',"' .. name .. '":' .. cjson.encode(v) end
  end
  opt('title', f['title'])
  opt('icon', f['icon'])
  local team = f['team']
  if team and team ~= '' and team ~= '[]' then out[#out + 1] = ',"team":' .. team end
  out[#out + 1] = ',"properties":{'
  for j, k in ipairs(props) do
    if j > 1 then out[#out + 1] = ',' end
    out[#out + 1] = cjson.encode(string.sub(k, 3))
    out[#out + 1] = ':'
    out[#out + 1] = f[k]
  end
  out[#out + 1] = '},"relations":{'
  for j, k in ipairs(rels) do
    if j > 1 then out[#out + 1] = ',' end
    out[#out + 1] = cjson.encode(string.sub(k, 3))
    out[#out + 1] = ':'
    local v = f[k]
    local c = string.sub(v, 1, 1)
    if c == '=' then
      out[#out + 1] = cjson.encode(string.sub(v, 2))
    elseif c == '[' then
      local ids = relIDs(v)
      for n, x in ipairs(ids) do ids[n] = cjson.encode(x) end
      out[#out + 1] = '[' .. table.concat(ids, ',') .. ']'
    else
      out[#out + 1] = 'null'
    end
  end
  out[#out + 1] = '}'
  opt('integration', f['_owner'])
  opt('kind', f['_kind'])
  out[#out + 1] = ',"createdAt":' .. jsonTime(f['_created']) .. ',"updatedAt":' .. jsonTime(f['_updated']) .. '}'
  return table.concat(out)
end

-- outboxAdd appends a change to the tenant's outbox stream (key passed in KEYS by the
-- caller) and returns its change identifier. The n-th change of a script call gets
-- the first 128 bits of SHA-1(seed ":" n), seed being 128 random bits from Go: unique
-- per change and known before the reply, since Lua has no randomness of its own. The
-- stream is capped near max entries (MAXLEN ~): beyond, the oldest entries go, changes
-- that were never published (see OutboxLimit).
-- The entity's JSON is entityJSON(f), unless the caller has it already (head: all
-- of it but the times, which only the script knows; see changeHead in Go): encoding
-- it here costs half of a create.
local outboxSeq = 0
local function outboxAdd(key, seed, max, op, f, head)
  outboxSeq = outboxSeq + 1
  local cid = string.sub(redis.sha1hex(seed .. ':' .. outboxSeq), 1, 32)
  local ej
  if head then
    ej = head .. ',"createdAt":' .. jsonTime(f['_created']) .. ',"updatedAt":' .. jsonTime(f['_updated']) .. '}'
  else
    ej = entityJSON(f)
  end
  redis.call('XADD', key, 'MAXLEN', '~', max, '*', 'change', '{"changeId":"' .. cid .. '","op":"' .. op ..
    '","blueprint":' .. cjson.encode(f['_bp']) .. ',"identifier":' .. cjson.encode(f['_id']) ..
    ',"entity":' .. ej .. '}')
  return cid
end
`

// upsertScript writes entities, each atomically and applying every rule that depends on
// stored state; several per call (upsertChunk), since the call itself cost a quarter of
// a create.
//
// KEYS[1] the first entity's key T:e:<bp>US<id> (it routes the call; every key of the
// tenant is in its slot); KEYS[2] the outbox T:outbox; KEYS[3] the fence key (only
// when the writes carry a fence token).
//
// ARGV is a sequence of frames, one per write: a count n, then the write's n
// arguments, called ARGV[1..n] below. The reply is an array of one reply per frame,
// each as described at the end.
//
// ARGV[1] T; ARGV[2] fence token or ""; ARGV[3] blueprint; ARGV[4] identifier;
// ARGV[5] integration (new owner); ARGV[6] kind; ARGV[7] fetched-at µs; ARGV[8] now ms;
// ARGV[9] merge "1"/"0"; ARGV[10] create missing targets "1"/"0"; ARGV[11] blueprint
// generation the caller validated against; ARGV[12] contentHash of the fields this
// write sets, computed by the caller; ARGV[13] "1" when the caller allows the fast
// unchanged path (no required field left to the merge); ARGV[14] change identifier
// seed (32 random hex digits); ARGV[15] outbox cap (OutboxLimit); ARGV[16] the
// entity's change JSON without its times, as it will be stored when the merge keeps
// no stored field (the script encodes it itself otherwise, or when empty); ARGV[17]
// ARGV[8] as encoding/json writes the time (see jsonTime: formatting it in Lua cost 6%
// of a create); then nset, nset
// pairs (content field, value) this write sets; then nrel, nrel triples (relation
// name, target blueprint, required "1"/"0") for the relations this write sets; then
// nreq, nreq content fields that must be set and not null after the merge (required
// ones the write left out).
//
// A write older than the entity's last write, or than a live delete of the same item
// by the same integration (its tombstone T:tomb:<integration>US<bp>US<id>, see
// deleteScript), is skipped as {"older"}.
//
// Every change is appended to the outbox in the same call (see outboxAdd): first a
// "created" change per barebones target, then the entity's "created" or "updated"
// change, each with the entity as stored after the write. Nothing else writes to it:
// a fenced, stale, older, invalid, missing or unchanged write appends nothing.
//
// When the stored hash equals the write's own hash, the content after a merge or a
// replace is the write's content, which is the stored content: the script answers
// Unchanged from five meta fields without reading the entity (the common case of a
// resync). Stored relation targets always exist (deletes clear or cascade), so the
// target check is not needed there.
//
// Check-only form: ARGV[3] (blueprint) empty, ARGV[1], ARGV[2] and ARGV[11] set: the
// caller found the write invalid and only needs to know that its blueprints were
// current; returns {"checked"} after the fence and generation checks.
//
// Returns {"fenced"}, {"bpstale"} (blueprints changed since the caller read them:
// reload and retry), {"checked"}, {"older"}, {"invalid", {fields}}, {"missing", {bp, id, ...}},
// {"unchanged"}, {"unchanged", {}, {}, "own"} (the fast path: the stored hash is the
// write's own) or {"unchanged", {created bp, id, ...}, {change id, ...}} (the stored
// entity lacked a relation target, which only a broken invariant allows, and the
// target was created), or {"created"|"updated", {created bp, id, ...}, {kept field,
// value, ...}, created ms, {change id, ...}} where kept are the content fields the
// merge kept from the stored entity (those the caller does not know) and the change
// identifiers are those of the barebones targets in order, then the entity's.
var upsertScript = redis.NewScript(luaPrelude + `
-- The fence and the blueprint generation cannot change within a call (no script
-- changes either), so each call reads them once, not once per frame.
local checked = {}

-- one writes one entity; A holds the arguments of its frame.
local function one(A)
  local T = A[1]
  local ck = T .. US .. A[2] .. US .. A[11]
  local st = checked[ck]
  if not st then
    st = 'ok'
    if A[2] ~= '' and redis.call('GET', KEYS[3]) ~= A[2] then
      st = 'fenced'
    elseif (redis.call('GET', T .. ':bpgen') or '0') ~= A[11] then
      st = 'bpstale'
    end
    checked[ck] = st
  end
  if st ~= 'ok' then return {st} end
  if A[3] == '' then return {'checked'} end
  local bp, id, owner, kind = A[3], A[4], A[5], A[6]
  local fetched, now = tonumber(A[7]), A[8]
  local merge, createMissing = A[9] == '1', A[10] == '1'
  local seed, outboxMax = A[14], A[15]
  local ek = T .. ':e:' .. A[3] .. US .. A[4]
  local member = bp .. US .. id
  local ownKey = T .. ':own:' .. owner .. US .. kind

  local meta = redis.call('HMGET', ek, '_id', '_fetched', '_hash', '_owner', '_kind')
  local exists = meta[1] ~= false
  local oldFetched = tonumber(meta[2] or '0')
  if exists and fetched < oldFetched then return {'older'} end
  -- A live delete of this integration's item at or after the fetch wins (see tombstones
  -- in deleteScript): the run fetched the item before the tool deleted it.
  local tomb = redis.call('GET', T .. ':tomb:' .. owner .. US .. member)
  if tomb and fetched <= tonumber(tomb) then return {'older'} end
  if exists and A[13] == '1' and meta[3] == A[12] and meta[4] == owner and meta[5] == kind then
    redis.call('ZADD', ownKey, now, member)
    if fetched > oldFetched then redis.call('HSET', ek, '_fetched', A[7]) end
    return {'unchanged', {}, {}, 'own'}
  end

  -- A create has nothing to read (HMGET said so): one call less.
  local old = {}
  if exists then old = toMap(redis.call('HGETALL', ek)) end

  local new, set = {}, {}
  if exists and merge then
    for k, v in pairs(old) do if not isMeta(k) then new[k] = v end end
  end
  jsonTimes[now] = A[17]
  local i = 18
  for _ = 1, tonumber(A[i]) do
    new[A[i + 1]] = A[i + 2]; set[A[i + 1]] = true
    i = i + 2
  end
  i = i + 1
  local rels = {}
  for _ = 1, tonumber(A[i]) do
    rels[#rels + 1] = {A[i + 1], A[i + 2], A[i + 3]}
    i = i + 3
  end
  i = i + 1
  local invalid = {}
  for _ = 1, tonumber(A[i]) do
    local f = A[i + 1]
    local v = new[f]
    if v == nil or v == 'null' or (string.sub(f, 1, 2) == 'r:' and (v == '-' or v == '[')) then
      invalid[#invalid + 1] = f
    end
    i = i + 1
  end
  if #invalid > 0 then return {'invalid', invalid} end

  -- Relation targets: every identifier this write points at must exist.
  local missing, seen = {}, {}
  for _, r in ipairs(rels) do
    for _, tid in ipairs(relIDs(new['r:' .. r[1]])) do
      local tk = T .. ':e:' .. r[2] .. US .. tid
      if tk ~= ek and not seen[tk] then
        seen[tk] = true
        if redis.call('EXISTS', tk) == 0 then missing[#missing + 1] = r[2]; missing[#missing + 1] = tid end
      end
    end
  end
  if #missing > 0 and not createMissing then return {'missing', missing} end
  local cids = {}
  for j = 1, #missing, 2 do
    local tbp, tid = missing[j], missing[j + 1]
    redis.call('HSET', T .. ':e:' .. tbp .. US .. tid, '_bp', tbp, '_id', tid, '_created', now,
      '_updated', now, '_fetched', '0', '_hash', EMPTY_HASH)
    redis.call('ZADD', T .. ':ids:' .. tbp, 0, tid)
    cids[#cids + 1] = outboxAdd(KEYS[2], seed, outboxMax, 'created', {_bp = tbp, _id = tid, _created = now, _updated = now})
  end

  -- The caller's hash is the content's when the merge kept nothing of the stored entity.
  local h = A[12]
  for k, _ in pairs(new) do
    if not set[k] then h = contentHash(new); break end
  end
  if exists and old['_hash'] == h and old['_owner'] == owner and old['_kind'] == kind then
    redis.call('ZADD', ownKey, now, member)
    if fetched > oldFetched then redis.call('HSET', ek, '_fetched', A[7]) end
    if #missing > 0 then return {'unchanged', missing, cids} end
    return {'unchanged'}
  end

  -- Reverse index: diff each relation this write sets, and each one a replace drops.
  local function reindex(name, oldv, oldmeta, newv, newmeta)
    local src = member .. US .. name .. US
    local function each(ids, meta, cmd, skip)
      local m = split(meta, US)
      for _, tid in ipairs(ids) do
        if not (skip and skip[tid]) then
          redis.call(cmd, T .. ':rev:' .. m[1] .. US .. tid, src .. m[2])
        end
      end
    end
    local oldIDs = oldmeta and relIDs(oldv) or {}
    local newIDs = newmeta and relIDs(newv) or {}
    if oldmeta and oldmeta == newmeta then
      local o, n = {}, {}
      for _, x in ipairs(oldIDs) do o[x] = true end
      for _, x in ipairs(newIDs) do n[x] = true end
      each(oldIDs, oldmeta, 'SREM', n)
      each(newIDs, newmeta, 'SADD', o)
    else
      if oldmeta then each(oldIDs, oldmeta, 'SREM') end
      if newmeta then each(newIDs, newmeta, 'SADD') end
    end
  end

  local hs, del = {}, {}
  for _, r in ipairs(rels) do
    local meta = r[2] .. US .. r[3]
    reindex(r[1], old['r:' .. r[1]], old['_r:' .. r[1]], new['r:' .. r[1]], meta)
    if old['_r:' .. r[1]] ~= meta then hs[#hs + 1] = '_r:' .. r[1]; hs[#hs + 1] = meta end
  end
  for k, v in pairs(old) do
    if not isMeta(k) and new[k] == nil then
      del[#del + 1] = k
      if string.sub(k, 1, 2) == 'r:' then
        local name = string.sub(k, 3)
        reindex(name, v, old['_r:' .. name], nil, nil)
        del[#del + 1] = '_r:' .. name
      end
    end
  end
  if #del > 0 then callChunked('HDEL', ek, del, 500) end

  local created = old['_created'] or now
  for k, v in pairs(new) do
    if old[k] ~= v then hs[#hs + 1] = k; hs[#hs + 1] = v end
  end
  for _, kv in ipairs({{'_bp', bp}, {'_id', id}, {'_owner', owner}, {'_kind', kind}, {'_hash', h},
      {'_updated', now}, {'_created', created}}) do
    if old[kv[1]] ~= kv[2] then hs[#hs + 1] = kv[1]; hs[#hs + 1] = kv[2] end
  end
  if not exists or fetched > oldFetched then hs[#hs + 1] = '_fetched'; hs[#hs + 1] = A[7] end
  callChunked('HSET', ek, hs, 500)

  if not exists then redis.call('ZADD', T .. ':ids:' .. bp, 0, id) end
  local oldOwner = old['_owner']
  if oldOwner and oldOwner ~= '' and (oldOwner ~= owner or old['_kind'] ~= kind) then
    redis.call('ZREM', T .. ':own:' .. oldOwner .. US .. old['_kind'], member)
  end
  redis.call('ZADD', ownKey, now, member)
  redis.call('SADD', T .. ':kinds:' .. owner, kind)

  local kept = {}
  for k, v in pairs(new) do
    if not set[k] then kept[#kept + 1] = k; kept[#kept + 1] = v end
  end
  local status = 'updated'
  if not exists then status = 'created' end
  new['_bp'], new['_id'], new['_owner'], new['_kind'] = bp, id, owner, kind
  new['_created'], new['_updated'] = created, now
  local head = nil
  if #kept == 0 and A[16] ~= '' then head = A[16] end
  cids[#cids + 1] = outboxAdd(KEYS[2], seed, outboxMax, status, new, head)
  return {status, missing, kept, created, cids}
end

local out, p = {}, 1
while p <= #ARGV do
  local n = tonumber(ARGV[p])
  out[#out + 1] = one({unpack(ARGV, p + 1, p + n)})
  p = p + n + 1
end
return out
`)

// touchScript settles, in one call for a whole batch, the writes that change nothing:
// the common case of a resync, which would otherwise cost one upsertScript call per
// entity (most of whose cost is the call itself, not the work).
//
// KEYS[1] routing key T:bpgen; KEYS[2] the fence key (only when ARGV[2] is not empty).
//
// ARGV[1] T; ARGV[2] fence token or ""; ARGV[3] now ms; ARGV[4] blueprint generation
// the caller validated against; then sextuples (blueprint, identifier, integration,
// kind, fetched-at µs, contentHash of the write's fields), each for a write
// upsertScript would take its fast unchanged path for (no required field left to a
// merge).
//
// For each write whose entity exists with that hash, owner and kind, was fetched no
// later than this write, and has no newer live-delete tombstone of the integration
// (see deleteScript), it does what upsertScript's unchanged path does: the
// ownership index gets now, _fetched the newer fetch time. Such a write is settled
// (Unchanged); every other one is left for upsertScript, which decides it fully.
//
// Returns {"fenced"}, {"bpstale"} or {"ok", {1|0|2, ...}}, one flag per write: 1
// settled, 2 the entity does not exist (a create: see createTx), 0 left to the script.
var touchScript = redis.NewScript(`
local T = ARGV[1]
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[2] then return {'fenced'} end
if (redis.call('GET', T .. ':bpgen') or '0') ~= ARGV[4] then return {'bpstale'} end
local US = '\31'
local now = ARGV[3]
local out = {}
for i = 5, #ARGV, 6 do
  local bp, id, owner, kind, fetched, h = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local member = bp .. US .. id
  local ek = T .. ':e:' .. member
  local m = redis.call('HMGET', ek, '_fetched', '_hash', '_owner', '_kind')
  local old = tonumber(m[1] or '')
  local f = tonumber(fetched)
  local settle = old and m[2] == h and m[3] == owner and m[4] == kind and f >= old
  if settle then
    -- A live delete at or after this fetch: upsertScript answers older.
    local tomb = redis.call('GET', T .. ':tomb:' .. owner .. US .. member)
    settle = not tomb or f > tonumber(tomb)
  end
  if settle then
    redis.call('ZADD', T .. ':own:' .. owner .. US .. kind, now, member)
    if f > old then redis.call('HSET', ek, '_fetched', fetched) end
    out[#out + 1] = 1
  elseif not m[1] and not m[3] then
    out[#out + 1] = 2
  else
    out[#out + 1] = 0
  end
end
return {'ok', out}
`)

// deleteScript deletes entities atomically, keeping the reverse index exact and
// never leaving a required relation pointing at a deleted entity.
//
// KEYS[1] routing key T:bpgen; KEYS[2] the outbox T:outbox; KEYS[3] the fence key (only
// when ARGV[2] is not empty).
//
// ARGV[1] T; ARGV[2] fence token or ""; ARGV[3] now ms; ARGV[4] mode: "any", "stale",
// "owned" or "live"; ARGV[5] integration (stale, owned, live); ARGV[6] cut-off: ms of
// the owned index (stale), or µs of the entity's fetch time (live: deleted only when
// fetched at or before it); ARGV[7]
// change identifier seed (32 random hex digits); ARGV[8] outbox cap (OutboxLimit);
// ARGV[9] tombstone lifetime ms (live); ARGV[10] nkinds, then nkinds kinds (stale); then triples (blueprint, identifier, check "1"/"0"),
// ordered so that dependents come before what they depend on. An entity with check "1"
// is deleted only if it is still the integration's ("owned"), and for "stale" also of
// one of the kinds and last written before the cut-off, so that an entity refreshed
// while the run went on survives.
//
// Candidates whose required dependents are not all candidates too are not deleted
// (repeated until stable, so a chain of them is kept whole). Optional relations of
// survivors that point at a deleted entity are cleared (a single target becomes null,
// a list loses the identifier) and the survivor's hash and _updated are rewritten.
//
// A call that writes tombstones also increments T:tombgen once, which a create
// transaction watches instead of every tombstone it reads (see createTx).
//
// A live delete leaves a tombstone per checked entity it is given, T:tomb:<integration>US<bp>US<id>
// holding the delete's cut-off (the largest one seen) for ARGV[9] ms, whether the
// entity is then deleted, blocked here by a new dependent, refused (newer, or another
// integration's) or absent; one the plan kept for its dependents never reaches the
// script and gets none. upsertScript and touchScript then skip this
// integration's writes of the item fetched at or before it. Without it, a run that
// fetched the item before the tool deleted it would write it back after the delete
// (the entity no longer exists, so its own fetch time cannot refuse the write).
//
// Every change is appended to the outbox in the same call (see outboxAdd), in the
// order of the reply: a "deleted" change per deleted entity (the entity as it was),
// then an "updated" change per cleared survivor (as it is after clearing). A fenced
// call appends nothing.
//
// Returns {"fenced"}, or {"ok", deleted, blocked, gone, fresh, cleared}: deleted and
// cleared are lists of {change id, bp, id, field, value, ...} (the entity before
// deletion, and after clearing); blocked, gone (no such entity) and fresh (check
// failed) are flat lists bp, id, ....
var deleteScript = redis.NewScript(luaPrelude + `
local T = ARGV[1]
if ARGV[2] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[2] then return {'fenced'} end
local now, mode, integ, before = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local seed, outboxMax, tombTTL = ARGV[7], ARGV[8], ARGV[9]
local kinds = {}
local i = 10
for _ = 1, tonumber(ARGV[i]) do kinds[ARGV[i + 1]] = true; i = i + 1 end
i = i + 1

local cands, isCand = {}, {}
local gone, fresh, blocked = {}, {}, {}
local tombed = false
while i + 2 <= #ARGV do
  local bp, id, check = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local ek = T .. ':e:' .. bp .. US .. id
  if mode == 'live' and check == '1' then
    local tk = T .. ':tomb:' .. integ .. US .. bp .. US .. id
    local prev = tonumber(redis.call('GET', tk) or '')
    if not prev or prev < before then
      redis.call('SET', tk, ARGV[6], 'PX', tombTTL)
      if not tombed then redis.call('INCR', T .. ':tombgen'); tombed = true end
    end
  end
  if not isCand[ek] then
    local f = toMap(redis.call('HGETALL', ek))
    if not f['_id'] then
      gone[#gone + 1] = bp; gone[#gone + 1] = id
    else
      local ok = true
      if check == '1' and mode ~= 'any' then
        ok = f['_owner'] == integ
        if ok and mode == 'live' then
          ok = (tonumber(f['_fetched']) or 0) <= before
        end
        if ok and mode == 'stale' then
          ok = kinds[f['_kind']] == true
          if ok then
            local score = redis.call('ZSCORE', T .. ':own:' .. integ .. US .. f['_kind'], bp .. US .. id)
            ok = score ~= false and tonumber(score) < before
          end
        end
      end
      if ok then
        isCand[ek] = true
        cands[#cands + 1] = {bp = bp, id = id, ek = ek, f = f, rev = redis.call('SMEMBERS', T .. ':rev:' .. bp .. US .. id)}
      else
        fresh[#fresh + 1] = bp; fresh[#fresh + 1] = id
      end
    end
  end
end

-- Keep every candidate a required relation of a non-candidate points at, until stable.
local changed = true
while changed do
  changed = false
  for _, c in ipairs(cands) do
    if isCand[c.ek] then
      for _, m in ipairs(c.rev) do
        local p = split(m, US)
        if p[4] == '1' and not isCand[T .. ':e:' .. p[1] .. US .. p[2]] then
          isCand[c.ek] = nil
          blocked[#blocked + 1] = c.bp; blocked[#blocked + 1] = c.id
          changed = true
          break
        end
      end
    end
  end
end

local deleted, cleared, clearedOrder = {}, {}, {}
for _, c in ipairs(cands) do
  if isCand[c.ek] then
    local f = c.f
    -- Its own relations leave the targets' reverse index.
    for k, meta in pairs(f) do
      if string.sub(k, 1, 3) == '_r:' then
        local name = string.sub(k, 4)
        local m = split(meta, US)
        local src = c.bp .. US .. c.id .. US .. name .. US .. m[2]
        for _, tid in ipairs(relIDs(f['r:' .. name])) do
          redis.call('SREM', T .. ':rev:' .. m[1] .. US .. tid, src)
        end
      end
    end
    -- Optional relations of survivors pointing here are cleared.
    local rk = T .. ':rev:' .. c.bp .. US .. c.id
    for _, m in ipairs(redis.call('SMEMBERS', rk)) do
      local p = split(m, US)
      local sk = T .. ':e:' .. p[1] .. US .. p[2]
      if not isCand[sk] then
        local field = 'r:' .. p[3]
        local v = redis.call('HGET', sk, field)
        if v then
          local nv = without(v, c.id)
          if nv ~= v then
            redis.call('HSET', sk, field, nv)
            if not cleared[sk] then
              cleared[sk] = true
              clearedOrder[#clearedOrder + 1] = {p[1], p[2], sk}
            end
          end
        end
      end
    end
    redis.call('DEL', rk)
    redis.call('ZREM', T .. ':ids:' .. c.bp, c.id)
    if f['_owner'] and f['_owner'] ~= '' then
      redis.call('ZREM', T .. ':own:' .. f['_owner'] .. US .. f['_kind'], c.bp .. US .. c.id)
    end
    redis.call('DEL', c.ek)
    local out = {outboxAdd(KEYS[2], seed, outboxMax, 'deleted', f), c.bp, c.id}
    for k, v in pairs(f) do out[#out + 1] = k; out[#out + 1] = v end
    deleted[#deleted + 1] = out
  end
end

local clearedOut = {}
for _, s in ipairs(clearedOrder) do
  local f = toMap(redis.call('HGETALL', s[3]))
  if f['_id'] then
    f['_hash'] = contentHash(f)
    f['_updated'] = now
    redis.call('HSET', s[3], '_hash', f['_hash'], '_updated', now)
    local out = {outboxAdd(KEYS[2], seed, outboxMax, 'updated', f), s[1], s[2]}
    for k, v in pairs(f) do out[#out + 1] = k; out[#out + 1] = v end
    clearedOut[#clearedOut + 1] = out
  end
end
return {'ok', deleted, blocked, gone, fresh, clearedOut}
`)

// putBlueprintScript stores a blueprint and bumps the tenant's blueprint generation.
//
// KEYS[1] T:bp; KEYS[2] T:bpgen; KEYS[3] T:ids:<bp>.
// ARGV[1] blueprint identifier; ARGV[2] blueprint JSON; then pairs (relation name,
// target blueprint) of the new definition.
//
// Returns {"retarget", relation, old target} without writing when entities of the
// blueprint exist and a relation keeps its name but changes its target (their stored
// identifiers would silently point into another blueprint); else {"ok", old JSON or ""}.
var putBlueprintScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and redis.call('ZCARD', KEYS[3]) > 0 then
  local rels = cjson.decode(old)['relations']
  if type(rels) == 'table' then
    for i = 3, #ARGV, 2 do
      local r = rels[ARGV[i]]
      if type(r) == 'table' and r['target'] ~= ARGV[i + 1] then
        return {'retarget', ARGV[i], tostring(r['target'])}
      end
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return {'ok', old or ''}
`)

// deleteBlueprintScript deletes a blueprint that has no entities.
//
// KEYS[1] T:bp; KEYS[2] T:bpgen; KEYS[3] T:ids:<bp>. ARGV[1] blueprint identifier.
// Returns -1 when there was no such blueprint, the number of its entities (and deletes
// nothing) when there are any, else 0.
var deleteBlueprintScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
local n = redis.call('ZCARD', KEYS[3])
if n > 0 then return n end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
return 0
`)

// reflagScript rewrites the reverse index entries of relations whose required flag
// changed in the blueprint, for a slice of the blueprint's entities; each entity's
// _r: meta says which flag its entries carry, so running it twice is harmless.
//
// KEYS[1] routing key T:bpgen. ARGV[1] T; ARGV[2] blueprint; ARGV[3] n, then n pairs
// (relation name, required "1"/"0"); then identifiers. Returns the number of entities
// changed.
var reflagScript = redis.NewScript(luaPrelude + `
local T, bp = ARGV[1], ARGV[2]
local n = tonumber(ARGV[3])
local changed = 0
for j = 4 + 2 * n, #ARGV do
  local id = ARGV[j]
  local ek = T .. ':e:' .. bp .. US .. id
  for r = 0, n - 1 do
    local name, req = ARGV[4 + 2 * r], ARGV[5 + 2 * r]
    local meta = redis.call('HGET', ek, '_r:' .. name)
    if meta then
      local m = split(meta, US)
      if m[2] ~= req then
        local src = bp .. US .. id .. US .. name .. US
        for _, tid in ipairs(relIDs(redis.call('HGET', ek, 'r:' .. name) or nil)) do
          local rk = T .. ':rev:' .. m[1] .. US .. tid
          redis.call('SREM', rk, src .. m[2])
          redis.call('SADD', rk, src .. req)
        end
        redis.call('HSET', ek, '_r:' .. name, m[1] .. US .. req)
        changed = changed + 1
      end
    end
  end
end
return changed
`)
