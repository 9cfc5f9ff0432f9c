/* Newsflash service worker: shows each alert, opens its article on click, keeps the subscription. */
'use strict';

var API = (function () {
  var api = new URL(self.location.href).searchParams.get('api');
  return api && /^https?:\/\//.test(api) ? new URL(api).origin : self.location.origin;
})();
var HOME = self.location.origin + '/';
// What the pages expect of this worker (newsflash.js, manage.js: the same number): they register
// it as sw.js?v=VERSION and do not wait for a worker registered with another one, which may
// not answer their check-in. Raise it in all three whenever the messages between them change.
var VERSION = 2;
var CONFIG_MAX_AGE_MS = 864e5;
// The title of an alert whose payload cannot be read, in the reader's language (from the widget).
var FALLBACK_TITLE = { en: 'News alert', sw: 'Arifa ya habari' };
// The action on an alert that opens a followable story, and what following it then says.
var FOLLOW = {
  en: { action: 'Follow this story', done: 'You follow this story: updates will replace this one.',
    failed: 'We couldn\u2019t follow this story just now. Tap \u201cFollow this story\u201d to try again.',
    closed: 'This story has ended: there are no more updates to follow.' },
  sw: { action: 'Fuatilia habari hii', done: 'Unafuatilia habari hii: taarifa mpya zitachukua nafasi ya hii.',
    failed: 'Hatukuweza kufuatilia habari hii sasa hivi. Gusa \u201cFuatilia habari hii\u201d ujaribu tena.',
    closed: 'Habari hii imefikia mwisho: hakuna taarifa mpya za kufuatilia.' }
};

/* -- a tiny key-value store in IndexedDB (survives worker restarts) -------------------------- */
function kv(key, value) {
  return new Promise(function (resolve, reject) {
    var open = indexedDB.open('newsflash', 1);
    open.onupgradeneeded = function () { open.result.createObjectStore('kv'); };
    open.onerror = function () { reject(open.error); };
    open.onsuccess = function () {
      var db = open.result;
      var tx = db.transaction('kv', value === undefined ? 'readonly' : 'readwrite');
      var req = value === undefined ? tx.objectStore('kv').get(key) : tx.objectStore('kv').put(value, key);
      tx.oncomplete = function () { db.close(); resolve(req.result); };
      tx.onerror = tx.onabort = function () { db.close(); reject(tx.error); };
    };
  });
}

function post(path, body) {
  return fetch(API + path, {
    method: 'POST', credentials: 'omit', keepalive: true,
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body)
  });
}

function text(value) {
  return typeof value === 'string' ? value : value == null ? '' : String(value);
}

function keyBytes(b64) {
  var s = atob((b64 + '==='.slice((b64.length + 3) % 4)).replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(s, function (c) { return c.charCodeAt(0); });
}

/* -- configuration: the publisher's origins and the server key, cached ---------------------- */
async function fetchConfig(timeoutMs) {
  var abort = new AbortController();
  var timer = setTimeout(function () { abort.abort(); }, timeoutMs);
  try {
    var answer = await fetch(API + '/api/v1/config', { credentials: 'omit', signal: abort.signal });
    if (!answer.ok) return null;
    var body = await answer.json();
    var config = { at: Date.now(), origins: body.origins || [], vapidPublicKey: body.vapidPublicKey };
    await kv('config', config);
    return config;
  } catch (e) {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

async function config(timeoutMs) {
  var cached = await kv('config').catch(function () { return null; });
  if (cached && Date.now() - cached.at < CONFIG_MAX_AGE_MS) return cached;
  return (await fetchConfig(timeoutMs)) || cached;
}

/* -- what a click may open: http(s) URLs on the publisher's origins, else the home page ----- */
function clickTarget(url, origins) {
  var allowed = [self.location.origin];
  (origins || []).forEach(function (o) {
    try { allowed.push(new URL(o).origin); } catch (e) { /* not an origin: ignore */ }
  });
  try {
    var u = new URL(text(url));
    if ((u.protocol === 'https:' || u.protocol === 'http:') && allowed.indexOf(u.origin) >= 0) {
      return u.href;
    }
  } catch (e) { /* not a URL */ }
  return HOME;
}

function wait(ms) {
  return new Promise(function (resolve) { setTimeout(resolve, ms); });
}

async function report(id, receipt, type) {
  // Counts only; a lost report must never cost the reader their notification or their click.
  // The receipt is what the push carried for this browser: without it nothing is counted.
  if (!/^\d+$/.test(text(id)) || !text(receipt)) return;
  var body = { alert: text(id), type: type, d: text(receipt) };
  for (var attempt = 0; attempt < 4; attempt++) {
    try {
      var answer = await post('/api/v1/events', body);
      // 425: the push arrived before the server recorded sending it; ask again shortly.
      if (answer.status !== 425) return;
      var after = Number(answer.headers.get('Retry-After')) || 2;
      await wait(Math.min(after, 10) * 1000 * (attempt + 1));
    } catch (e) {
      return;
    }
  }
}

/* -- push: always show a notification, then report it ---------------------------------------- */
// The payload is a Declarative Web Push message ({"web_push": 8030, "notification": {...}});
// browsers without Declarative Web Push hand it to this worker, which shows the same thing.
// Earlier payloads (flat title/body/url) are read as before.
function alertOf(p) {
  var n = p.web_push === 8030 && p.notification && typeof p.notification === 'object' ? p.notification : {};
  var data = n.data && typeof n.data === 'object' ? n.data : {};
  var pick = function (a, b) { return typeof a === 'string' && a ? a : b; };
  return {
    // Words and links only from strings: anything else is left out, never shown as "[object Object]".
    id: text(pick(data.id, p.id)), d: pick(data.d, p.d), title: pick(n.title, pick(p.title, '')),
    body: pick(n.body, pick(p.body, '')), url: pick(n.navigate, pick(p.url, '')), tag: pick(n.tag, p.tag),
    lang: pick(n.lang, ''), dir: pick(n.dir, ''), icon: pick(n.icon, p.icon), image: pick(n.image, p.image),
    badge: pick(n.badge, p.badge), silent: n.silent === true,
    timestamp: typeof n.timestamp === 'number' ? n.timestamp : typeof p.ts === 'number' ? p.ts * 1000 : null
  };
}

async function showAlert(data) {
  var p = {};
  try { p = data ? data.json() : {}; } catch (e) { p = { body: data ? data.text() : '' }; }
  if (!p || typeof p !== 'object') p = {};
  var a = alertOf(p);
  var options = { body: a.body, data: { url: a.url, id: a.id } };
  if (typeof a.d === 'string' && a.d) options.data.d = a.d;
  ['icon', 'image', 'badge', 'tag'].forEach(function (k) { if (typeof a[k] === 'string' && a[k]) options[k] = a[k]; });
  if (a.timestamp !== null) options.timestamp = a.timestamp;
  if (a.lang) options.lang = a.lang;
  if (a.dir === 'ltr' || a.dir === 'rtl' || a.dir === 'auto') options.dir = a.dir;
  if (a.silent) options.silent = true;
  var lang = await kv('lang').catch(function () { return null; });
  if (p.follow === true && options.tag && canAct()) {
    options.actions = [{ action: 'follow', title: (FOLLOW[lang] || FOLLOW.en).action }];
    options.data.story = options.tag;
  }
  var title = a.title || FALLBACK_TITLE[lang] || FALLBACK_TITLE.en;
  // A push that does not say its language is in the reader's (the server writes to each in
  // theirs), and so is the fallback title: a screen reader then reads it with the right sounds.
  if (!options.lang) options.lang = FALLBACK_TITLE[lang] ? lang : 'en';
  var shown = showing.then(function () { return display(title, options); });
  showing = shown.catch(function () {});
  await shown;
  await Promise.all([report(a.id, a.d, 'displayed'), firstKnown().catch(function () {})]);
}

// Notifications are shown one at a time: a correction pushed right behind its story then sees
// the story's notification (and alerts again), and the browser is never asked for its list
// while it is still storing one (headless Chromium lost such notifications in our tests).
var showing = Promise.resolve();

async function display(title, options) {
  if (options.tag) {
    // A correction replaces the earlier notification for the story: let it alert again.
    options.renotify = (await self.registration.getNotifications({ tag: options.tag })).length > 0;
  }
  try {
    await self.registration.showNotification(title, options);
  } catch (e) {
    await self.registration.showNotification(title, { body: options.body, data: options.data });
  }
}

self.addEventListener('push', function (event) {
  event.waitUntil(Promise.all([showAlert(event.data), settleQuietly()]));
});

// Safari 18.4+ shows a declarative message itself; because it is mutable, the worker sees it
// first. The browser's proposed notification stays as it is (it opens the article on a click,
// without this worker); the worker only reports that it was shown.
self.addEventListener('pushnotification', function (event) {
  var proposed = event.proposedNotification || event.notification || {};
  var data = proposed.data || {};
  event.waitUntil(Promise.all([
    report(data.id, data.d, 'displayed'), firstKnown().catch(function () {}), settleQuietly()
  ]));
});

/* -- click: focus the article's open tab, or open it ----------------------------------------- */
// The page a URL shows: without its fragment and its utm_* tags. The alert's link is tagged
// per alert (core/utm.py), the reader's tab usually is not (or carries another alert's tags).
function pageOf(href) {
  try {
    var u = new URL(href);
    u.hash = '';
    Array.from(u.searchParams.keys()).filter(function (k) { return /^utm_/.test(k); })
      .forEach(function (k) { u.searchParams.delete(k); });
    return u.href;
  } catch (e) {
    return href;
  }
}

async function focusOrOpen(tab, url) {
  if (tab && tab.focus) {
    try {
      return await tab.focus();
    } catch (e) { /* the browser refused (the tab is closing, no user gesture): open it */ }
  }
  return self.clients.openWindow(url);
}

async function openAlert(notification) {
  var data = notification.data || {};
  var reported = report(data.id, data.d, 'clicked');
  var cfg = await config(800);
  var url = clickTarget(data.url, cfg && cfg.origins);
  var page = pageOf(url);
  var windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  var tab = windows.find(function (w) { return pageOf(w.url) === page; });
  await Promise.all([focusOrOpen(tab, url).catch(function () {}), reported]);
  return url;
}

function canAct() {
  return typeof Notification !== 'undefined' && 'actions' in Notification.prototype &&
    (Notification.maxActions || 0) > 0;
}

/* -- "Follow this story": the subscription itself proves who follows -------------------------- */
async function followStory(notification) {
  var data = notification.data || {};
  var sub = await self.registration.pushManager.getSubscription();
  if (!sub || !/^nf[0-9a-f]{30}$/.test(text(data.story))) return;
  var json = sub.toJSON();
  var answer = await post('/api/v1/stories/' + data.story + '/follow',
    { endpoint: json.endpoint, auth: json.keys.auth }).catch(function () { return null; });
  var lang = await kv('lang').catch(function () { return null; });
  var words = FOLLOW[lang] || FOLLOW.en;
  // The body is ours, in the reader's language, whatever language the alert's title came in
  // (an alert with no Kiswahili text reaches a Kiswahili reader in English).
  var options = { tag: data.story, data: { url: data.url, id: data.id }, lang: FOLLOW[lang] ? lang : 'en' };
  // The tap closed the alert: without a word the reader would think they follow the story.
  // A failure brings it back saying so, with its Follow button to try again unless the story
  // has closed (409), where another try could never work.
  var body = answer && answer.ok ? words.done : answer && answer.status === 409 ? words.closed : words.failed;
  if (body === words.failed && canAct()) {
    options.data.story = data.story;
    options.actions = [{ action: 'follow', title: words.action }];
  }
  await self.registration.showNotification(notification.title, Object.assign(options, { body: body }));
}

self.addEventListener('notificationclick', function (event) {
  event.notification.close();
  event.waitUntil(settleQuietly());
  if (event.action === 'follow') {
    event.waitUntil(followStory(event.notification));
    return;
  }
  event.waitUntil(openAlert(event.notification));
});

/* -- the subscription: remember it, and move the reader's record when it changes ------------ */
// kv('subscription') is the proof of ownership (endpoint + auth secret) of the subscription the
// server last knew for this browser; a move needs it, and the browser forgets an old
// subscription once it renews it.
function proofOf(sub) {
  var json = sub && (typeof sub.toJSON === 'function' ? sub.toJSON() : sub);
  var auth = json && json.keys ? json.keys.auth : json && json.auth;
  if (!json || typeof json.endpoint !== 'string' || typeof auth !== 'string') return null;
  return { endpoint: json.endpoint, auth: auth };
}

// Each proof once, in order, none of them null.
function proofs(list) {
  return list.filter(function (p, i) {
    return p && list.findIndex(function (q) {
      return q && q.endpoint === p.endpoint && q.auth === p.auth;
    }) === i;
  });
}

// Only once the server has the subscription: a sign-up or a save on a page, a move answered.
async function remember(sub) {
  sub = sub || await self.registration.pushManager.getSubscription();
  var proof = proofOf(sub);
  if (!proof) return;
  var known = await kv('subscription').catch(function () { return null; });
  if (known && known.endpoint === proof.endpoint && known.auth === proof.auth) return;
  await kv('subscription', proof);
}

// A worker installed before kv('subscription') existed starts from the browser's subscription
// (a push, a start); later ones never overwrite what the server knows: a difference is a renewal.
async function firstKnown() {
  if (!(await kv('subscription'))) await remember();
}

// Chrome seldom fires pushsubscriptionchange: the browser may renew the subscription (new
// endpoint, new keys) without a word, and our server would push to a dead endpoint. So every
// check-in (a page, a push, a click, a start, a sync) compares the browser's subscription with
// the one the server last knew, and a difference becomes the same durable move the event
// makes, proven by the old endpoint and secret. No subscription any more: the reader turned
// alerts off (or the browser dropped it); nothing to move, and none is made up.
async function noticeRenewal() {
  var known = await kv('subscription');
  var now = known && proofOf(await self.registration.pushManager.getSubscription());
  if (!now || (now.endpoint === known.endpoint && now.auth === known.auth)) return;
  var move = (await kv('move')) || { from: [], to: null, at: Date.now() };
  var from = proofs(move.from.concat([known]));
  if (from.length === move.from.length) return;
  move.from = from;
  await kv('move', move);
}

// The browser renews a subscription when it likes, on a phone often while the network is down
// (or while our server is): a move that never reaches the server would cost the reader their
// topics and choices. So the move is written down (kv 'move') before it is tried, tried a few
// times within the event, and then again at every later chance (a push, a page of the site, a
// click, Background Sync where the browser has it) until the server has answered it.
// The record holds only proofs of subscriptions this browser had: `from`, the ones the server
// may still know the reader by (the move needs one of them, as the API always did), and `to`,
// the subscription the move was for. A page's message never adds to it.
var MOVE_WAITS_MS = [2000, 10000];
var MOVE_SYNC_TAG = 'newsflash-move';

async function postPatiently(path, body, waits) {
  for (var attempt = 0; ; attempt++) {
    var last = attempt >= waits.length;
    try {
      var answer = await post(path, body);
      if (last || !answeredLater(answer)) return answer;
    } catch (e) {
      if (last) throw e;
    }
    await wait(waits[attempt]);
  }
}

function answeredLater(answer) {
  return answer.status >= 500 || answer.status === 429;
}

function resubscribe(oldSub, newSub, waits) {
  return inTurn(function () { return renew(oldSub, newSub, waits); });
}

async function renew(oldSub, newSub, waits) {
  var move = (await kv('move').catch(function () { return null; })) || { from: [], to: null };
  var known = await kv('subscription').catch(function () { return null; });
  // Firefox gives no oldSubscription: what we remembered stands for it.
  move.from = proofs(move.from.concat([known, proofOf(oldSub)]));
  move.at = Date.now();
  await kv('move', move);
  try {
    if (!newSub) {
      var key = oldSub && oldSub.options && oldSub.options.applicationServerKey;
      newSub = await subscribeAgain(key);
    }
    return await finishMove(newSub, waits || MOVE_WAITS_MS);
  } catch (e) {
    laterSync();
    return 0;  // no answer yet: the move waits in kv('move') for the next chance
  }
}

async function subscribeAgain(key) {
  if (!key) key = keyBytes((await config(5000)).vapidPublicKey);
  return self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
}

function laterSync() {
  if (self.registration.sync) self.registration.sync.register(MOVE_SYNC_TAG).catch(function () {});
}

// Rejects when the move is still to be done (no answer, or the server answered 5xx/429).
async function finishMove(sub, waits) {
  var move = await kv('move');
  if (!move) return 0;
  sub = sub || await self.registration.pushManager.getSubscription();
  if (!sub && move.to) {
    // The browser had the new subscription and has none now: the reader turned alerts off.
    await kv('move', null);
    return 0;
  }
  if (!sub) sub = await subscribeAgain();
  var json = sub.toJSON(), target = proofOf(sub);
  if (!move.to || move.to.endpoint !== target.endpoint) {
    // Renewed again meanwhile: an earlier move to `to` may have reached the server unanswered.
    move = { from: proofs(move.from.concat([move.to])), to: target, at: move.at };
    await kv('move', move);
  }
  var answer = null;
  for (var i = 0; i < move.from.length && (!answer || answer.status === 404); i++) {
    if (move.from[i].endpoint === target.endpoint) continue;
    answer = await postPatiently('/api/v1/subscriptions/change',
      { oldEndpoint: move.from[i].endpoint, oldAuth: move.from[i].auth, subscription: json }, waits);
  }
  if (!answer || answer.status === 404) {
    // The server knows none of them: this move was made before and its answer lost (a sign-up
    // without topics keeps what was moved), or the old record is gone (the default topics).
    var lang = await kv('lang').catch(function () { return null; });
    answer = await postPatiently('/api/v1/subscriptions',
      Object.assign(json, lang ? { lang: lang } : {}), waits);
  }
  if (answeredLater(answer)) throw new Error('move: HTTP ' + answer.status);
  // Done, or refused for good (400, 409): asking again would change nothing.
  await kv('move', null);
  if (answer.ok) await remember(sub);
  return answer.status;
}

// One move at a time: the renewal, a push, a page and a sync may all ask at once.
var moving = Promise.resolve();

function inTurn(work) {
  var run = moving.then(work);
  moving = run.catch(function () {});
  return run;
}

function settle(waits) {
  return inTurn(function () {
    return noticeRenewal().then(function () { return finishMove(null, waits || []); });
  });
}

function settleQuietly() {
  return settle().catch(function () { laterSync(); });
}

self.addEventListener('pushsubscriptionchange', function (event) {
  event.waitUntil(resubscribe(event.oldSubscription, event.newSubscription));
});

// Chromium's Background Sync: the browser calls again when the network is back, and retries
// (with its own back-off) while this rejects.
self.addEventListener('sync', function (event) {
  if (event.tag === MOVE_SYNC_TAG) event.waitUntil(settle());
});

// A page of the site tells the worker the reader is here (and asks which language their alerts
// are in, for its Manage alerts link); a page that saved the reader's choices tells it their
// language.
self.addEventListener('message', function (event) {
  var data = event.data || {};
  var port = event.ports && event.ports[0];
  if (data.type === 'newsflash:visit') {
    event.waitUntil(settleQuietly().then(function () {
      return kv('lang').catch(function () { return null; });
    }).then(function (lang) {
      if (port) port.postMessage({ lang: FALLBACK_TITLE[lang] ? lang : null, version: VERSION });
    }));
    return;
  }
  var lang = FALLBACK_TITLE[data.lang] ? data.lang : null;
  if (data.type === 'newsflash:lang' && lang) event.waitUntil(kv('lang', lang));
  if (data.type !== 'newsflash:remember') return;
  // The page has just stored this subscription with the reader's own choices (a sign-up, a
  // save): an older move would bring back what they replaced.
  event.waitUntil(Promise.all([remember(), lang ? kv('lang', lang) : null, kv('move', null)]));
});

self.addEventListener('install', function () { self.skipWaiting(); });

self.addEventListener('activate', function (event) {
  event.waitUntil(Promise.all([
    self.clients.claim(), firstKnown().catch(function () {}), fetchConfig(5000).then(settleQuietly)
  ]));
});
