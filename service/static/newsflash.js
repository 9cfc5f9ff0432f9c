/* Newsflash opt-in widget: a soft prompt, then the browser's own permission dialog, then push. */
(function () {
  'use strict';
  var me = document.currentScript;
  var API = (me && me.dataset.api) || (me ? new URL(me.src, location.href).origin : location.origin);
  var MANAGE = (me && me.dataset.manage) || '/manage';
  var WORKER = (me && me.dataset.sw) || '/sw.js';
  var DISMISSED = 'newsflash:dismissedAt';
  var TURNED_OFF = 'newsflash:offAt';
  var SYNCED = 'newsflash:syncedAt';
  var SLOW_MS = 6000;
  var DAY_MS = 864e5;
  var d = document;
  var root, statusEl, returnTo, T;
  // The page's language first (data-lang, then <html lang>), then the browser's; the server
  // takes the first it writes in (en, sw), else its default.
  var LANGS = [me && me.dataset.lang, d.documentElement.lang].concat(navigator.languages || [navigator.language])
    .filter(Boolean).join(',');
  // Browser errors by DOMException name: what each means for the reader (never shown raw).
  var ERRORS = { NotAllowedError: 'private', AbortError: 'push', InvalidStateError: 'stale',
    NotSupportedError: 'unsupported', SecurityError: 'unsupported', TimeoutError: 'timeout',
    NetworkError: 'push' };

  function supported() {
    return window.isSecureContext && 'serviceWorker' in navigator && 'PushManager' in window &&
      'Notification' in window;
  }

  function appleMobile() {
    var n = navigator;
    return /iP(hone|ad|od)/.test(n.userAgent) || (/Macintosh/.test(n.userAgent) && n.maxTouchPoints > 1);
  }

  // What the reader's device is, sent with the subscription: the push service alone cannot
  // tell Chrome on Android from Chrome on a desktop (both FCM), nor an iPhone from a Mac.
  function platform() {
    return /Android/i.test(navigator.userAgent) ? 'android' : appleMobile() ? 'ios' : 'desktop';
  }

  // iOS and iPadOS 16.4+ push only to a web app opened from the Home Screen; in a Safari tab
  // there is no PushManager, so "Yes, Thanks" could never work there.
  function iosTab() {
    var n = navigator, v = /OS (\d+)_(\d+)/.exec(n.userAgent) || /Version\/(\d+)\.(\d+)/.exec(n.userAgent);
    var apple = appleMobile();
    var home = n.standalone === true || matchMedia('(display-mode: standalone)').matches;
    return window.isSecureContext && apple && !home && !!v && (v[1] > 16 || (v[1] == 16 && v[2] >= 4)) && 'serviceWorker' in n;
  }

  function fail(code) {
    var e = new Error(T[code]);
    e.nf = code;
    return e;
  }

  function explain(e) {
    if (e && e.nf) return e;
    // Chrome in a private window: AbortError "Registration failed - permission denied".
    return fail(/permission/i.test(e && e.message) ? 'private' : ERRORS[e && e.name] || 'push');
  }

  function timeout(promise, ms, code) {
    return Promise.race([promise, new Promise(function (_, reject) {
      setTimeout(function () { reject(fail(code)); }, ms);
    })]);
  }

  function el(tag, attrs, text) {
    var node = d.createElement(tag);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text) node.textContent = text;
    return node;
  }

  function keyBytes(b64) {
    var s = atob((b64 + '==='.slice((b64.length + 3) % 4)).replace(/-/g, '+').replace(/_/g, '/'));
    var out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  function post(path, body) {
    return fetch(API + path, {
      method: 'POST', credentials: 'omit', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    });
  }

  var CSS = '.nf{position:fixed;z-index:2147483000;bottom:16px;right:16px;max-width:360px;box-sizing:border-box;' +
    'background:#fff;color:#1a1a1a;border:1px solid #767676;border-radius:8px;padding:16px 18px;' +
    'box-shadow:0 6px 24px rgba(0,0,0,.25);font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;text-align:left;' +
    // Never taller than the screen (a phone on its side, a large font): it scrolls instead.
    'max-height:calc(100vh - 32px);max-height:calc(100dvh - 32px);overflow-y:auto;overscroll-behavior:contain}' +
    '.nf *{box-sizing:border-box;font:inherit;color:inherit;margin:0}' +
    '.nf-title{font-weight:700;font-size:18px}.nf-body{margin:4px 0 10px}.nf-steps{margin:0 0 8px;padding-left:22px}' +
    '.nf fieldset{border:0;padding:0;margin:4px 0 10px}.nf legend{font-weight:600;margin-bottom:4px}' +
    '.nf label{display:flex;gap:8px;align-items:center;padding:3px 0;cursor:pointer}' +
    '.nf input{width:18px;height:18px;accent-color:#0b4f9c}' +
    '.nf-row{display:flex;gap:8px;flex-wrap:wrap;margin-top:6px}' +
    '.nf button{cursor:pointer;border-radius:6px;padding:9px 16px;border:2px solid #0b4f9c;font-weight:600;' +
    'min-height:44px}' +
    '.nf-yes{background:#0b4f9c;color:#fff!important}.nf-no{background:#fff;color:#0b4f9c!important}' +
    '.nf .nf-more{border:0;background:none;padding:2px 0;color:#0b4f9c!important;text-decoration:underline}' +
    '.nf button:disabled{opacity:.6;cursor:wait}' +
    '.nf :focus-visible,.nf-link:focus-visible,.nf-follow:focus-visible{outline:3px solid #c75000;outline-offset:2px}' +
    '.nf-status:not(:empty){margin-top:10px}.nf-status a{color:#0b4f9c}' +
    '.nf-link{position:fixed;z-index:2147483000;bottom:12px;right:12px;background:#fff;color:#0b4f9c;' +
    'border:1px solid #767676;border-radius:16px;padding:4px 12px;font:14px system-ui,sans-serif}' +
    '.nf-follow{display:inline-block;margin:12px 0;cursor:pointer;border-radius:6px;padding:9px 16px;' +
    'min-height:44px;' +
    'border:2px solid #0b4f9c;background:#fff;color:#0b4f9c;font:600 16px system-ui,sans-serif}' +
    '.nf-follow[aria-pressed=true]{background:#0b4f9c;color:#fff}.nf-follow:disabled{opacity:.6;cursor:wait}' +
    '.nf-follow-box{display:flex;flex-wrap:wrap;align-items:center;gap:0 12px}' +
    '.nf-follow-note{font:16px system-ui,sans-serif;color:#1a1a1a}' +
    '@media (max-width:480px){.nf{left:8px;right:8px;bottom:8px;max-width:none;max-height:calc(100vh - 16px);' +
    'max-height:calc(100dvh - 16px)}}' +
    // A finger needs 44 x 44 px (WCAG 2.5.5, Apple's HIG): on a phone or a touch screen every
    // topic, button and link of ours is that tall; a mouse keeps the compact look.
    '@media (max-width:480px),(pointer:coarse){.nf label,.nf .nf-more{min-height:44px}' +
    '.nf-link,.nf-status a{display:inline-flex;align-items:center;min-height:44px}' +
    '.nf-link{padding:0 16px;border-radius:22px}}';

  function addStyle() {
    if (!d.getElementById('nf-style')) d.head.appendChild(el('style', { id: 'nf-style' }, CSS));
  }

  // The manage page in the language of the reader's alerts when the service worker knows it
  // (a Kiswahili reader may read an English page), else in the one the reader was asked in
  // (their browser may say another). The manage page itself then follows the stored language.
  function manageHref(stored) {
    var url = new URL(MANAGE, location.href);
    if (stored || !url.searchParams.has('lang')) url.searchParams.set('lang', stored || T.lang);
    return url.origin === location.origin ? url.pathname + url.search + url.hash : url.href;
  }

  function manageLink(told) {
    addStyle();
    var a = el('a', { href: manageHref(), class: 'nf-link', lang: T.lang }, T.manage);
    var slot = d.getElementById('newsflash-manage');
    if (slot) { a.className = ''; slot.appendChild(a); } else d.body.appendChild(a);
    told.then(function (answer) {
      if (!answer.lang) return;
      a.href = manageHref(answer.lang);
      a.hreflang = answer.lang;
    });
  }

  // "Follow this story" where the page names one: data-story on our script tag, or
  // <meta name="newsflash:story" content="...">. Updates then replace each other on screen.
  function namedStory() {
    var meta = d.querySelector('meta[name="newsflash:story"]');
    var key = (me && me.dataset.story) || (meta && meta.content) || '';
    return /^nf[0-9a-f]{30}$/.test(key) ? key : null;
  }

  async function followButton(sub) {
    var key = namedStory();
    if (!key || !sub) return;
    var story = await (await fetch(API + '/api/v1/stories/' + key, { credentials: 'omit' })).json();
    if (!story.open) return;
    addStyle();
    var json = sub.toJSON(), proof = { endpoint: json.endpoint, auth: json.keys.auth };
    var mine = await post('/api/v1/subscriptions/stories', proof);
    var following = mine.ok && (await mine.json()).stories.some(function (s) { return s.key === key; });
    var button = el('button', { type: 'button', class: 'nf-follow', 'aria-pressed': String(following), lang: T.lang });
    var shown = function () { button.textContent = following ? T.following : T.follow; };
    shown();
    button.onclick = async function () {
      var keyboard = d.activeElement === button;
      button.disabled = true;
      var answer = await post('/api/v1/stories/' + key + (following ? '/unfollow' : '/follow'), proof)
        .catch(function () { return null; });
      if (answer && answer.ok) following = !following;
      button.setAttribute('aria-pressed', String(following));
      shown();
      // Beside the button, announced: the button keeps saying what it does.
      note.textContent = answer && answer.ok ? '' : T.followFailed;
      button.disabled = false;
      if (keyboard) button.focus();
    };
    var note = el('span', { class: 'nf-follow-note', role: 'status', lang: T.lang });
    var box = el('span', { class: 'nf-follow-box' });
    box.appendChild(button);
    box.appendChild(note);
    var slot = d.getElementById('newsflash-follow');
    if (slot) slot.appendChild(box); else if (me && me.parentNode) me.parentNode.insertBefore(box, me.nextSibling);
    else d.body.appendChild(box);
  }

  function close() {
    var hadFocus = root && root.contains(d.activeElement);
    if (root) root.remove();
    root = null;
    if (hadFocus) (returnTo && d.contains(returnTo) ? returnTo : d.body).focus();
  }

  function dismiss() {
    try { localStorage.setItem(DISMISSED, String(Date.now())); } catch (e) { /* private mode */ }
    close();
    mark('snoozed');
  }

  function say(text, link) {
    statusEl.textContent = text;
    if (link) {
      statusEl.appendChild(d.createTextNode(' '));
      statusEl.appendChild(el('a', { href: manageHref() }, T.manage));
    }
    // The prompt may be scrolled inside itself (a short screen): keep the answer in view.
    if (statusEl.scrollIntoView) statusEl.scrollIntoView({ block: 'nearest' });
  }

  function frame(body) {
    addStyle();
    root = el('section', { class: 'nf', role: 'dialog', 'aria-modal': 'false', lang: T.lang,
      'aria-labelledby': 'nf-title', 'aria-describedby': 'nf-body' });
    root.appendChild(el('p', { id: 'nf-title', class: 'nf-title' }, T.title));
    root.appendChild(el('p', { id: 'nf-body', class: 'nf-body' }, body));
    root.addEventListener('focusin', function (e) {
      if (e.relatedTarget && !root.contains(e.relatedTarget)) returnTo = e.relatedTarget;
    });
    d.body.insertBefore(root, d.body.firstChild);
  }

  function showSteps() {
    frame(T.iosBody);
    var list = el('ol', { class: 'nf-steps' });
    ['iosStep1', 'iosStep2', 'iosStep3'].forEach(function (k) { list.appendChild(el('li', {}, T[k])); });
    var no = el('button', { type: 'button', class: 'nf-no' }, T.dismiss);
    var row = el('div', { class: 'nf-row' });
    row.appendChild(no);
    root.appendChild(list);
    root.appendChild(row);
    no.onclick = dismiss;
    root.addEventListener('keydown', function (e) { if (e.key === 'Escape') dismiss(); });
  }

  function showPrompt(config) {
    var p = config.prompt;
    frame(p.body);
    var more = el('button', { type: 'button', class: 'nf-more', 'aria-expanded': 'false',
      'aria-controls': 'nf-topics' }, T.more);
    var picker = el('fieldset', { id: 'nf-topics', hidden: '' });
    picker.appendChild(el('legend', {}, T.legend));
    config.topics.forEach(function (t) {
      var label = el('label');
      var box = el('input', { type: 'checkbox', name: 'nf-topic', value: t.slug });
      box.checked = !!t.default;
      label.appendChild(box);
      label.appendChild(d.createTextNode(t.name));
      picker.appendChild(label);
    });
    var row = el('div', { class: 'nf-row' });
    var yes = el('button', { type: 'button', class: 'nf-yes' }, p.accept);
    var no = el('button', { type: 'button', class: 'nf-no' }, p.dismiss);
    row.appendChild(yes);
    row.appendChild(no);
    statusEl = el('p', { class: 'nf-status', role: 'status', 'aria-live': 'polite' });
    [more, picker, row, statusEl].forEach(function (n) { root.appendChild(n); });

    more.onclick = function () {
      var open = picker.hidden;
      picker.hidden = !open;
      more.setAttribute('aria-expanded', String(open));
      if (open) picker.querySelector('input').focus();
    };
    no.onclick = dismiss;
    // Escape does what the secondary button does now: "Not now" before, "Close" after signing up.
    root.addEventListener('keydown', function (e) { if (e.key === 'Escape' && !no.disabled) no.onclick(); });
    yes.onclick = function () {
      var topics = [].slice.call(picker.querySelectorAll('input:checked')).map(function (b) { return b.value; });
      if (!topics.length) {
        picker.hidden = false;
        more.setAttribute('aria-expanded', 'true');
        say(T.pickOne);
        return;
      }
      // Disabled buttons lose the focus: give it back afterwards to a keyboard reader.
      var keyboard = root.contains(d.activeElement);
      yes.disabled = no.disabled = true;
      say(T.working);
      var slow = setTimeout(function () { say(T.slow); }, SLOW_MS);
      optIn(config, topics).then(function (names) {
        clearTimeout(slow);
        more.remove();
        picker.remove();
        no.textContent = T.close;
        no.disabled = false;
        no.onclick = close;
        row.replaceChildren(no);
        root.appendChild(row);
        say(T.signedUp.replace('{topics}', names), true);
        mark('subscribed');
        navigator.serviceWorker.getRegistration().then(function (reg) {
          return reg && reg.pushManager.getSubscription();
        }).then(followButton).catch(function () {});
        statusEl.setAttribute('tabindex', '-1');
        statusEl.focus();
      }, function (err) {
        clearTimeout(slow);
        err = explain(err);
        yes.disabled = no.disabled = false;
        if (err.nf === 'denied' || err.nf === 'unsupported') {
          no.textContent = T.close;
          no.onclick = close;
          row.replaceChildren(no);
        }
        say(err.message);
        if (keyboard) (row.contains(yes) ? yes : no).focus();
      });
    };
  }

  async function optIn(config, topics) {
    var permission = await new Promise(function (resolve) {
      var r = Notification.requestPermission(resolve);
      if (r && r.then) r.then(resolve);
    });
    if (permission === 'denied') throw fail('denied');
    if (permission !== 'granted') throw fail('dismissed');
    var sw = new URL(WORKER, location.href);
    if (API !== location.origin) sw.searchParams.set('api', API);
    sw.searchParams.set('v', nfWorker.VERSION);
    var reg;
    try {
      await navigator.serviceWorker.register(sw.href, { scope: '/' });
      reg = await timeout(navigator.serviceWorker.ready, 15000, 'timeout');
    } catch (e) {
      // Only a browser that refuses workers cannot push; a worker script that did not arrive
      // (a phone's data dropping, our server down: a TypeError) is tried again by the reader.
      throw e.nf ? e : fail(e && (e.name === 'SecurityError' || e.name === 'NotSupportedError') ? 'unsupported' : 'network');
    }
    var options = { userVisibleOnly: true, applicationServerKey: keyBytes(config.vapidPublicKey) };
    var sub;
    try {
      sub = await timeout(reg.pushManager.subscribe(options), 20000, 'timeout');
    } catch (e) {
      if (e.name !== 'InvalidStateError') throw explain(e);
      // Subscribed earlier with another server key: replace that subscription.
      var old = await reg.pushManager.getSubscription();
      if (old) await old.unsubscribe();
      sub = await timeout(reg.pushManager.subscribe(options), 20000, 'timeout').catch(function (e) {
        throw explain(e);
      });
    }
    var answer;
    try {
      answer = await timeout(post('/api/v1/subscriptions',
        Object.assign(sub.toJSON(), { topics: topics, lang: T.lang, platform: platform() })), 20000, 'network');
    } catch (e) {
      await sub.unsubscribe().catch(function () {});
      throw fail('network');
    }
    if (!answer.ok) {
      // The browser must not believe it is subscribed when our server has no record of it.
      await sub.unsubscribe().catch(function () {});
      throw fail('refused');
    }
    var saved = await answer.json();
    if (reg.active) reg.active.postMessage({ type: 'newsflash:remember', lang: T.lang });
    try {
      localStorage.removeItem(DISMISSED);
      localStorage.removeItem(TURNED_OFF);
      localStorage.setItem(SYNCED, String(Date.now()));
    } catch (e) { /* private mode */ }
    var words = config.topics.filter(function (t) { return saved.topics.indexOf(t.slug) >= 0; })
        .map(function (t) { return t.name; });
    // A list in the reader's language ("Siasa na Michezo"), not commas alone.
    try { return new Intl.ListFormat(T.lang, { type: 'conjunction' }).format(words); } catch (e) { return words.join(', '); }
  }

  // A visit says this browser still wants alerts: the server forgets subscriptions it has not
  // seen for NEWSFLASH_SUBSCRIPTION_MAX_AGE_DAYS. Once a day at most; without topics, so the
  // reader's stored topics and language stay. Not after Turn off (the row is gone on purpose,
  // only the browser's unsubscribe failed).
  function resync(sub) {
    if (since(SYNCED) < DAY_MS || since(TURNED_OFF) < Infinity) return;
    var json = sub.toJSON();
    post('/api/v1/subscriptions', { endpoint: json.endpoint, expirationTime: json.expirationTime,
      keys: json.keys, platform: platform() }).then(function (answer) {
      if (answer.ok) localStorage.setItem(SYNCED, String(Date.now()));
    }).catch(function () { /* tried again on the next visit */ });
  }

  // The page can style or test against <html data-newsflash="...">: what the widget decided.
  function mark(state) {
    d.documentElement.setAttribute('data-newsflash', state);
  }

  // How long ago a stamp was written. One from the future means the phone's clock was wrong
  // then (or is now): count from today, so a wrong clock never stretches a delay nor stops
  // the daily check-in.
  function since(key) {
    try {
      var at = Number(localStorage.getItem(key)) || -Infinity, now = Date.now();
      if (at > now) localStorage.setItem(key, String(at = now));
      return now - at;
    } catch (e) { return Infinity; }
  }

  async function start() {
    var steps = !supported() && iosTab();
    if (!supported() && !steps) return mark('unsupported');
    if (!steps && Notification.permission === 'denied') return mark('denied');
    var reg = !steps && await navigator.serviceWorker.getRegistration();
    var told = nfWorker.visit(reg);
    var sub = reg && reg.pushManager && await reg.pushManager.getSubscription();
    var config = await (await fetch(API + '/api/v1/config?lang=' + encodeURIComponent(LANGS),
      { credentials: 'omit' })).json();
    T = Object.assign({ lang: config.lang }, config.prompt);
    if (sub) {
      // The check-in waits for the worker: a subscription it is still moving the reader's
      // record to would otherwise be signed up afresh with the default topics first.
      told.then(function () { resync(sub); });
      // A story that cannot be read now (offline) only leaves its button out: the reader is
      // still subscribed, and the page's data-newsflash must keep saying so.
      return manageLink(told), mark('subscribed'), followButton(sub).catch(function () {});
    }
    if (since(DISMISSED) < config.prompt.reaskDays * DAY_MS) return mark('snoozed');
    if (since(TURNED_OFF) < config.prompt.reaskAfterOffDays * DAY_MS) return mark('turned-off');
    if (steps) return showSteps(), mark('homescreen');
    showPrompt(config);
    mark('prompt');
  }

  function boot() {
    start().catch(function () { mark('quiet'); /* the page must never break because of us */ });
  }
  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
