//! The Lua scripts that decide every cluster-wide fact in one atomic step on Redis.
//!
//! Each node writes only its own *absolute* contribution (how many subscribers of a channel it
//! holds, whether a user is in a presence channel on it, how many sockets an app has on it);
//! the script folds the difference into the cluster total and reports the transition it caused
//! (0 → n: occupied / member added; n → 0: vacated / member removed). Two nodes racing on the
//! same user therefore produce exactly one `member_added`: Redis runs one script at a time.
//! Absolute values make a retry harmless: sending the same value twice changes nothing.
//!
//! Every mutating script first checks that the node still holds its lease in `<p>:nodes`
//! (fencing): a node that was declared dead and reaped gets `-1` and must re-register and send
//! its state again, instead of resurrecting members the others were told had left.
//!
//! Messages to the other nodes (`member_added`, `member_removed`, counts) are published inside
//! the script, in the layout of [`super::envelope`], so they are ordered with the state change.
//!
//! Keys (`p` = `<key_prefix>:v1`), all created and removed by these scripts:
//! ```text
//! p:nodes                 ZSET node -> lease deadline (ms, Redis TIME)
//! p:dead                  ZSET node -> when it was claimed for reaping
//! p:reap:<node>           STRING the reaper's id (claim, PX)
//! p:node:<node>           HASH addr, version, started, conns, beat (the panel's node list)
//! p:n:<node>:apps         SET apps the node contributes to (what a reaper visits)
//! p:n:<node>:a:<app>:subs HASH channel -> the node's subscribers
//! p:n:<node>:a:<app>:pres HASH "<channel>\n<user>" -> the node's sockets of that user
//! p:a:<app>:chans         HASH channel -> cluster subscribers (occupied channels only)
//! p:a:<app>:users         HASH presence channel -> cluster users
//! p:a:<app>:p:<ch>:n      HASH user -> nodes the user is present on
//! p:a:<app>:p:<ch>:i      HASH user -> user_info JSON (the first connection's)
//! p:a:<app>:p:<ch>:o      ZSET user -> join sequence (the roster's order)
//! p:a:<app>:seq           STRING join sequence of the app's presence channels
//! p:a:<app>:conns         HASH node -> the app's sockets on that node
//! p:a:<app>:cache:<ch>    STRING the last event of a cache channel (PX = its TTL)
//! p:a:<app>:errors        LIST the app's recent errors from every node (JSON, newest first)
//! p:a:<app>:vac:<ch>      STRING the node holding a delayed `channel_vacated` (PX = the delay)
//! p:a:<app>:vm:<ch>\n<u>  STRING the node holding a delayed `member_removed` (PX = the delay)
//! p:all:conns             STRING the cluster's sockets, every app
//! p:all:chans             STRING the cluster's occupied channels, every app
//! p:g:<minute>            HASH the statistics gauges of a minute (Redis TIME), see below
//! p:stats                 STRING the node writing the cluster's gauges (PX = a lease)
//! p:live:<node>           STRING the node's live statistics of the last second (JSON, PX 3 s)
//! ```
//!
//! **Statistics gauges.** A peak or a minimum is not a sum: two nodes each peaking at 100
//! connections at different seconds of a minute do not make a cluster peak of 200. So every
//! script that changes an app's connection total or its occupied channels also records, for the
//! current minute (Redis's own clock, one for every node), the highest and lowest value the
//! cluster total reached, and the value at the minute's start (fields `<app>\n<c|h>\n<hi|lo|o>`;
//! app `*` is the whole cluster). These are exact: Redis runs one script at a time, so the
//! totals they see are the cluster's at that instant. One node at a time (a lease) reads them
//! with `gauges` and writes them into the statistics as the rows of node `*`.

use redis::Script;

/// Shared Lua: the fencing check, and the two transitions (used by the setters and the reaper).
const COMMON: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fenced(p, node)
  return not redis.call('ZSCORE', p .. ':nodes', node)
end

-- Records that an app's (or, for app '*', the whole cluster's) total of `what` (c: connections,
-- h: occupied channels) went from `before` to `after`, in this minute's gauges.
local function gauge(p, app, what, before, after)
  if before == after then return end
  local t = tonumber(redis.call('TIME')[1])
  local g = p .. ':g:' .. (t - t % 60)
  local f = app .. '\n' .. what .. '\n'
  local hi = redis.call('HGET', g, f .. 'hi')
  if not hi then
    -- The first change this minute: the total held since the minute began was `before`.
    redis.call('HSET', g, f .. 'o', before, f .. 'hi', math.max(before, after),
      f .. 'lo', math.min(before, after))
    redis.call('EXPIRE', g, 7200)
    return
  end
  if after > tonumber(hi) then redis.call('HSET', g, f .. 'hi', after) end
  if after < tonumber(redis.call('HGET', g, f .. 'lo')) then redis.call('HSET', g, f .. 'lo', after) end
end

-- Moves the whole cluster's total of `what` (conns or chans) by `delta`, in the gauges too.
local function gauge_all(p, what, delta)
  if delta == 0 then return end
  local after = redis.call('INCRBY', p .. ':all:' .. what, delta)
  local short = 'c'
  if what == 'chans' then short = 'h' end
  gauge(p, '*', short, after - delta, after)
end

-- Sets a node's socket count of an app (absolute), keeping the totals and gauges.
local function conns_apply(p, node, app, n)
  local key = p .. ':a:' .. app .. ':conns'
  local total = 0
  for _, v in ipairs(redis.call('HVALS', key)) do total = total + tonumber(v) end
  local old = tonumber(redis.call('HGET', key, node) or '0')
  if n < 0 then n = 0 end
  if n > 0 then redis.call('HSET', key, node, n) else redis.call('HDEL', key, node) end
  gauge(p, app, 'c', total, total - old + n)
  gauge_all(p, 'conns', n - old)
end

-- Folds a node's new subscriber count of a channel into the cluster total.
-- Returns old total, new total, and the node holding a `channel_vacated` webhook for the
-- channel when it is occupied again within the vacate delay ('' otherwise); publishes the total
-- when asked and it changed. `holder` is who will hold the vacated webhook of a vacate now.
local function count_apply(p, node, app, ch, n, publish_count, origin, holder, delay)
  local mine = p .. ':n:' .. node .. ':a:' .. app .. ':subs'
  local old = tonumber(redis.call('HGET', mine, ch) or '0')
  local chans = p .. ':a:' .. app .. ':chans'
  local before = tonumber(redis.call('HGET', chans, ch) or '0')
  local after = before + (n - old)
  if after < 0 then after = 0 end
  if n > 0 then redis.call('HSET', mine, ch, n) else redis.call('HDEL', mine, ch) end
  if after > 0 then redis.call('HSET', chans, ch, after) else redis.call('HDEL', chans, ch) end
  if publish_count and after ~= before and after > 0 then
    redis.call('PUBLISH', p .. ':a:' .. app .. ':ev', 'S\n' .. origin .. '\n' .. ch .. '\n' .. after)
  end
  local vac = p .. ':a:' .. app .. ':vac:' .. ch
  local held = ''
  if before == 0 and after > 0 then
    held = redis.call('GET', vac) or ''
    if held ~= '' then redis.call('DEL', vac) end
    local occupied = redis.call('HLEN', chans)
    gauge(p, app, 'h', occupied - 1, occupied)
    gauge_all(p, 'chans', 1)
  elseif before > 0 and after == 0 then
    if delay > 0 then redis.call('SET', vac, holder, 'PX', delay) end
    local occupied = redis.call('HLEN', chans)
    gauge(p, app, 'h', occupied + 1, occupied)
    gauge_all(p, 'chans', -1)
  end
  return before, after, held
end

-- Sets whether (n > 0) a node holds a user in a presence channel.
-- Returns 1 when the user joined the cluster, 2 when it left it, 0 otherwise, -2 when full;
-- and, on a join within the vacate delay of the user's leave, the node holding that leave's
-- `member_removed` webhook ('' otherwise).
local function presence_apply(p, node, app, ch, user, n, info, max, origin, holder, delay)
  local mine = p .. ':n:' .. node .. ':a:' .. app .. ':pres'
  local field = ch .. '\n' .. user
  local old = 0
  if redis.call('HEXISTS', mine, field) == 1 then old = 1 end
  local here = 0
  if n > 0 then here = 1 end
  local base = p .. ':a:' .. app .. ':p:' .. ch
  local cur = tonumber(redis.call('HGET', base .. ':n', user) or '0')
  local new = cur + (here - old)
  local transition = 0
  local held = ''
  local vm = p .. ':a:' .. app .. ':vm:' .. ch .. '\n' .. user
  if cur <= 0 and new > 0 then
    if max > 0 and redis.call('HLEN', base .. ':n') >= max then return -2, '' end
    held = redis.call('GET', vm) or ''
    if held ~= '' then redis.call('DEL', vm) end
    redis.call('HSET', base .. ':i', user, info)
    redis.call('ZADD', base .. ':o', redis.call('INCR', p .. ':a:' .. app .. ':seq'), user)
    redis.call('HINCRBY', p .. ':a:' .. app .. ':users', ch, 1)
    redis.call('PUBLISH', p .. ':a:' .. app .. ':ev',
      'A\n' .. origin .. '\n' .. ch .. '\n' .. user .. '\n' .. info)
    transition = 1
  elseif cur > 0 and new <= 0 then
    redis.call('HDEL', base .. ':i', user)
    redis.call('ZREM', base .. ':o', user)
    if redis.call('HINCRBY', p .. ':a:' .. app .. ':users', ch, -1) <= 0 then
      redis.call('HDEL', p .. ':a:' .. app .. ':users', ch)
    end
    redis.call('PUBLISH', p .. ':a:' .. app .. ':ev',
      'R\n' .. origin .. '\n' .. ch .. '\n' .. user)
    if delay > 0 then redis.call('SET', vm, holder, 'PX', delay) end
    transition = 2
  end
  if new > 0 then redis.call('HSET', base .. ':n', user, new) else redis.call('HDEL', base .. ':n', user) end
  if here > 0 then redis.call('HSET', mine, field, n) else redis.call('HDEL', mine, field) end
  return transition, held
end
";

/// `count_set`: `ARGV = p node app channel count publish_count(0/1) vacate_delay_ms`.
/// Returns `{before, after, holder}` or `{-1}` when fenced.
const COUNT_SET: &str = r"
local p, node, app, ch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if fenced(p, node) then return {-1} end
redis.call('SADD', p .. ':n:' .. node .. ':apps', app)
local before, after, held = count_apply(p, node, app, ch, tonumber(ARGV[5]), ARGV[6] == '1',
  node, node, tonumber(ARGV[7]))
return {before, after, held}
";

/// `presence_set`: `ARGV = p node app channel user sockets info max_members want_roster(0/1)
/// vacate_delay_ms`. Returns `{transition, holder}` or `{transition, holder, ids_in_join_order,
/// flat_user_info_hash}`; transition -1 = fenced, -2 = full (nothing written).
const PRESENCE_SET: &str = r"
local p, node, app, ch, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if fenced(p, node) then return {-1} end
redis.call('SADD', p .. ':n:' .. node .. ':apps', app)
local t, held = presence_apply(p, node, app, ch, user, tonumber(ARGV[6]), ARGV[7],
  tonumber(ARGV[8]), node, node, tonumber(ARGV[10]))
if t == -2 or ARGV[9] ~= '1' then return {t, held} end
local base = p .. ':a:' .. app .. ':p:' .. ch
return {t, held, redis.call('ZRANGE', base .. ':o', 0, -1), redis.call('HGETALL', base .. ':i')}
";

/// `conns`: `ARGV = p node app delta limit`. Admits `delta > 0` only while the cluster total stays
/// within `limit` (0 = no limit). Returns 1 admitted, 0 refused, -1 fenced.
const CONNS: &str = r"
local p, node, app = ARGV[1], ARGV[2], ARGV[3]
local delta, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
if fenced(p, node) then return -1 end
local key = p .. ':a:' .. app .. ':conns'
if delta > 0 and limit > 0 then
  local total = 0
  for _, v in ipairs(redis.call('HVALS', key)) do total = total + tonumber(v) end
  if total + delta > limit then return 0 end
end
redis.call('SADD', p .. ':n:' .. node .. ':apps', app)
conns_apply(p, node, app, tonumber(redis.call('HGET', key, node) or '0') + delta)
return 1
";

/// `conns_set`: `ARGV = p node app count`: the node's absolute socket count (after a resync).
const CONNS_SET: &str = r"
local p, node, app, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if fenced(p, node) then return -1 end
redis.call('SADD', p .. ':n:' .. node .. ':apps', app)
conns_apply(p, node, app, n)
return 1
";

/// `heartbeat`: `ARGV = p node lease_ms addr version started conns`.
/// Returns 1 when the node was registered already, 0 when it (re)joined now (first beat, or
/// it had been reaped: the caller must send its state again), 2 while it is being reaped
/// (it must wait: the reaper is still removing its old state).
const HEARTBEAT: &str = r"
local p, node, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('ZSCORE', p .. ':dead', node) then return 2 end
local now = now_ms()
local existed = redis.call('ZSCORE', p .. ':nodes', node)
redis.call('ZADD', p .. ':nodes', now + lease, node)
redis.call('HSET', p .. ':node:' .. node, 'addr', ARGV[4], 'version', ARGV[5],
  'started', ARGV[6], 'conns', ARGV[7], 'beat', now)
if existed then return 1 end
return 0
";

/// `sweep`: `ARGV = p me claim_ms`. Claims nodes whose lease ran out (moving them to `dead`, which
/// fences them), and dead nodes whose reaper's claim lapsed. Returns the nodes this node won.
const SWEEP: &str = r"
local p, me, claim = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local won = {}
for _, d in ipairs(redis.call('ZRANGEBYSCORE', p .. ':nodes', '-inf', now)) do
  if d ~= me then
    redis.call('ZREM', p .. ':nodes', d)
    redis.call('ZADD', p .. ':dead', now, d)
  end
end
for _, d in ipairs(redis.call('ZRANGE', p .. ':dead', 0, -1)) do
  if d ~= me and redis.call('SET', p .. ':reap:' .. d, me, 'NX', 'PX', claim) then
    table.insert(won, d)
  end
end
return won
";

/// `reap_chunk`: `ARGV = p dead app limit me claim_ms publish_count(0/1) vacate_delay_ms`.
/// Zeroes up to `limit` of
/// the dead node's contributions to one app through the same transitions as the setters (the
/// messages carry the dead node as origin, so every live node delivers them). Returns
/// `{done(0/1), vacated channels..., '\n', removed "<ch>\n<user>"...}`.
const REAP_CHUNK: &str = r"
local p, d, app, limit, me = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
if redis.call('GET', p .. ':reap:' .. d) ~= me then return {-1} end
redis.call('PEXPIRE', p .. ':reap:' .. d, tonumber(ARGV[6]))
local publish_count = ARGV[7] == '1'
local delay = tonumber(ARGV[8])
local vacated, removed = {}, {}
local budget = limit
local pres = p .. ':n:' .. d .. ':a:' .. app .. ':pres'
local fields = redis.call('HKEYS', pres)
for i = 1, math.min(#fields, budget) do
  local f = fields[i]
  local nl = string.find(f, '\n', 1, true)
  local ch, user = string.sub(f, 1, nl - 1), string.sub(f, nl + 1)
  if presence_apply(p, d, app, ch, user, 0, '', 0, d, me, delay) == 2 then
    table.insert(removed, f)
  end
  budget = budget - 1
end
local subs = p .. ':n:' .. d .. ':a:' .. app .. ':subs'
if budget > 0 then
  local chans = redis.call('HKEYS', subs)
  for i = 1, math.min(#chans, budget) do
    local before, after = count_apply(p, d, app, chans[i], 0, publish_count, d, me, delay)
    if before > 0 and after == 0 then table.insert(vacated, chans[i]) end
  end
end
local done = 0
if redis.call('EXISTS', pres) == 0 and redis.call('EXISTS', subs) == 0 then
  conns_apply(p, d, app, 0)
  redis.call('SREM', p .. ':n:' .. d .. ':apps', app)
  done = 1
end
local out = {done}
for _, c in ipairs(vacated) do table.insert(out, c) end
table.insert(out, '\n')
for _, r in ipairs(removed) do table.insert(out, r) end
return out
";

/// `reap_done`: `ARGV = p dead me`. Forgets the dead node once every app of it is reaped.
const REAP_DONE: &str = r"
local p, d, me = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', p .. ':reap:' .. d) ~= me then return 0 end
if redis.call('SCARD', p .. ':n:' .. d .. ':apps') > 0 then return 0 end
redis.call('DEL', p .. ':n:' .. d .. ':apps', p .. ':node:' .. d, p .. ':reap:' .. d)
redis.call('ZREM', p .. ':dead', d)
return 1
";

/// `leave`: `ARGV = p node`. A node stopping cleanly removes its lease and node record (its
/// contributions are already zero: every socket was closed).
const LEAVE: &str = r"
local p, node = ARGV[1], ARGV[2]
redis.call('ZREM', p .. ':nodes', node)
redis.call('DEL', p .. ':node:' .. node, p .. ':n:' .. node .. ':apps')
return 1
";

/// `gauges`: `ARGV = p me lease_ms app...`. While this node holds (or wins) the `p:stats` lease,
/// returns the gauges of the minute that ended last and of the current one (Redis TIME) for
/// `*` and each app: `{ended_minute, current_minute, then per minute and app (apps in ARGV
/// order after '*'): c_hi, c_lo, h_hi}`; `{}` when another node holds the lease. An app with
/// no change in a minute held one value all along: the next minute's opening value, or the
/// current total. Also resets the cluster totals from the apps' (undoing any drift).
const GAUGES: &str = r"
local p, me, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local holder = redis.call('GET', p .. ':stats')
if holder and holder ~= me then return {} end
redis.call('SET', p .. ':stats', me, 'PX', lease)
local t = tonumber(redis.call('TIME')[1])
local now = t - t % 60
local apps = {'*'}
for i = 4, #ARGV do table.insert(apps, ARGV[i]) end
local totals = {}
local all_c, all_h = 0, 0
for i = 2, #apps do
  local c = 0
  for _, v in ipairs(redis.call('HVALS', p .. ':a:' .. apps[i] .. ':conns')) do c = c + tonumber(v) end
  local h = redis.call('HLEN', p .. ':a:' .. apps[i] .. ':chans')
  totals[apps[i]] = {c, h}
  all_c, all_h = all_c + c, all_h + h
end
totals['*'] = {all_c, all_h}
redis.call('SET', p .. ':all:conns', all_c)
redis.call('SET', p .. ':all:chans', all_h)
local out = {now - 60, now}
for _, minute in ipairs({now - 60, now}) do
  local g = p .. ':g:' .. minute
  local following = p .. ':g:' .. (minute + 60)
  for _, app in ipairs(apps) do
    for _, what in ipairs({'c', 'h'}) do
      local f = app .. '\n' .. what .. '\n'
      local v = redis.call('HMGET', g, f .. 'hi', f .. 'lo')
      local hi, lo = tonumber(v[1]), tonumber(v[2])
      if not hi then
        local held = tonumber(redis.call('HGET', following, f .. 'o'))
        if minute == now or not held then
          if what == 'c' then held = totals[app][1] else held = totals[app][2] end
        end
        hi, lo = held, held
      end
      table.insert(out, hi)
      if what == 'c' then table.insert(out, lo) end
    end
  end
end
return out
";

/// `live`: `ARGV = p me json px`. Stores this node's live numbers and returns the cluster's
/// occupied channels and every other live node's numbers: `{all_chans, {json...}}`.
const LIVE: &str = r"
local p, me = ARGV[1], ARGV[2]
redis.call('SET', p .. ':live:' .. me, ARGV[3], 'PX', tonumber(ARGV[4]))
local others = {}
for _, n in ipairs(redis.call('ZRANGE', p .. ':nodes', 0, -1)) do
  if n ~= me then
    local live = redis.call('GET', p .. ':live:' .. n)
    if live then table.insert(others, live) end
  end
end
return {tonumber(redis.call('GET', p .. ':all:chans') or '0'), others}
";

/// The loaded scripts (their SHA1s are computed once; `redis::Script` re-sends the source on
/// `NOSCRIPT`, so a Redis that lost its script cache is handled).
pub struct Scripts {
    pub count_set: Script,
    pub presence_set: Script,
    pub conns: Script,
    pub conns_set: Script,
    pub heartbeat: Script,
    pub sweep: Script,
    pub reap_chunk: Script,
    pub reap_done: Script,
    pub leave: Script,
    pub gauges: Script,
    pub live: Script,
}

impl Scripts {
    pub fn new() -> Self {
        let with_common = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Self {
            count_set: with_common(COUNT_SET),
            presence_set: with_common(PRESENCE_SET),
            conns: with_common(CONNS),
            conns_set: with_common(CONNS_SET),
            heartbeat: with_common(HEARTBEAT),
            sweep: with_common(SWEEP),
            reap_chunk: with_common(REAP_CHUNK),
            reap_done: with_common(REAP_DONE),
            leave: with_common(LEAVE),
            gauges: with_common(GAUGES),
            live: with_common(LIVE),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}
