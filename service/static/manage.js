/* Newsflash manage page: shows this browser's topics, changes them, turns alerts on or off. */
(function () {
  'use strict';
  var d = document;
  var page = d.getElementById('nf-manage');
  var API = page.dataset.api || location.origin;
  var T = JSON.parse(d.getElementById('nf-texts').textContent);
  var LANG = page.getAttribute('lang') || 'en';
  // The reader's device, as the widget reports it (see newsflash.js).
  function platform() {
    var ua = navigator.userAgent;
    if (/Android/i.test(ua)) return 'android';
    return /iP(hone|ad|od)/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1) ? 'ios' : 'desktop';
  }
  var state = d.getElementById('nf-state');
  var form = d.getElementById('nf-form');
  var save = d.getElementById('nf-save');
  var on = d.getElementById('nf-on');
  var off = d.getElementById('nf-off');
  var offButton = d.getElementById('nf-off-button');
  var language = d.getElementById('nf-lang');
  var message = d.getElementById('nf-message');
  var TURNED_OFF = 'newsflash:offAt';
  var sub = null;
  var known = false;
  var topicsOnRecord = [];
  // Browser errors by DOMException name (the same table as the widget): never shown raw.
  var ERRORS = { NotAllowedError: 'private', AbortError: 'push', InvalidStateError: 'stale',
    NotSupportedError: 'unsupported', SecurityError: 'unsupported', TimeoutError: 'timeout' };

  function say(text) {
    message.textContent = text;
  }

  function post(path, body, method) {
    return fetch(API + path, {
      method: method || 'POST', credentials: 'omit',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body)
    });
  }

  function fail(code) {
    var e = new Error(T[code]);
    e.nf = code;
    return e;
  }

  function bounded(promise, ms) {
    return Promise.race([promise, new Promise(function (_, reject) {
      setTimeout(function () { reject(fail('timeout')); }, ms);
    })]);
  }

  function remember(key, value) {
    try {
      if (value) localStorage.setItem(key, value); else localStorage.removeItem(key);
    } catch (e) { /* private mode */ }
  }

  function chosen() {
    return [].slice.call(form.querySelectorAll('input:checked')).map(function (b) { return b.value; });
  }

  // "Habari za dharura, Siasa na Michezo": a list in the page's language, not commas alone.
  function names(slugs) {
    var words = [].slice.call(form.querySelectorAll('input')).filter(function (b) {
      return slugs.indexOf(b.value) >= 0;
    }).map(function (b) { return b.parentNode.textContent.trim(); });
    try {
      return new Intl.ListFormat(LANG, { type: 'conjunction' }).format(words);
    } catch (e) {
      return words.join(', ');
    }
  }

  function setChecked(slugs) {
    form.querySelectorAll('input').forEach(function (b) { b.checked = slugs.indexOf(b.value) >= 0; });
  }

  // The service worker keeps the reader's language for texts it writes itself (and a sign-up
  // again after pushsubscriptionchange): every save states the page's language, so it follows.
  function tellWorker(reg, lang) {
    if (reg && reg.active) reg.active.postMessage({ type: 'newsflash:remember', lang: lang || LANG });
  }

  // The page speaks the language of the reader's alerts, whatever the link or the browser
  // asked for: its Save buttons state the page's language, and must never switch a Kiswahili
  // reader's alerts to English because they came from an English page. True when it reloads.
  function speak(lang) {
    var url = new URL(location.href);
    if (!lang || lang === LANG || url.searchParams.get('lang') === lang) return false;
    url.searchParams.set('lang', lang);
    location.replace(url.href);
    return true;
  }

  // The reader's own switch to another language: their topics as stored, in that language.
  async function switchTo(lang, button) {
    var keyboard = d.activeElement === button;
    button.disabled = true;
    var body = Object.assign(sub.toJSON(), { topics: topicsOnRecord, lang: lang });
    try {
      var answer = await post('/api/v1/subscriptions', body, 'PUT');
      if (!answer.ok) throw new Error(String(answer.status));
      tellWorker(await navigator.serviceWorker.getRegistration(), lang);
      speak(lang);
    } catch (e) {
      button.disabled = false;
      say(T.langFailed);
      if (keyboard) button.focus();
    }
  }

  function changed() {
    d.dispatchEvent(new CustomEvent('newsflash:subscription'));
  }

  function showOn(topics) {
    known = true;
    topicsOnRecord = topics;
    setChecked(topics);
    state.textContent = T.isOn.replace('{topics}', names(topics));
    form.hidden = off.hidden = save.hidden = language.hidden = false;
    on.hidden = true;
  }

  // Not subscribed (after Not now, after Turn off, a fresh browser): offer to turn alerts on.
  function showTurnOn(text) {
    sub = null;
    known = false;
    state.textContent = text;
    off.hidden = save.hidden = language.hidden = true;
    form.hidden = on.hidden = false;
    if (!chosen().length) {
      form.querySelectorAll('input').forEach(function (b, i) { b.checked = i === 0; });
    }
  }

  function showNothing(text) {
    form.hidden = off.hidden = true;
    state.textContent = text;
  }

  // iPhone/iPad in a Safari tab: push works once the site is opened from the Home Screen.
  function showSteps() {
    showNothing(T.iosBody);
    var list = d.createElement('ol');
    list.id = 'nf-steps';
    ['iosStep1', 'iosStep2', 'iosStep3'].forEach(function (k) {
      list.appendChild(d.createElement('li')).textContent = T[k];
    });
    state.after(list);
  }

  // Only iOS and iPadOS 16.4 and later push to Home Screen apps (the widget's rule): on an
  // older one the steps would end on a Home Screen app that still cannot get alerts.
  function iosTab() {
    var ua = navigator.userAgent;
    var v = /OS (\d+)_(\d+)/.exec(ua) || /Version\/(\d+)\.(\d+)/.exec(ua);
    var apple = /iP(hone|ad|od)/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1);
    var recent = !!v && (Number(v[1]) > 16 || (Number(v[1]) === 16 && Number(v[2]) >= 4));
    return window.isSecureContext && apple && recent && navigator.standalone !== true &&
      !matchMedia('(display-mode: standalone)').matches && 'serviceWorker' in navigator;
  }

  async function load() {
    if (!('serviceWorker' in navigator) || !('PushManager' in window) || !('Notification' in window)) {
      return iosTab() ? showSteps() : showNothing(T.noPush);
    }
    if (Notification.permission === 'denied') return showNothing(T.denied);
    var reg = await navigator.serviceWorker.getRegistration();
    // First the service worker finishes what it could not do offline (moving this reader's
    // record to a renewed subscription, or one the browser renewed silently): the lookup then
    // finds it (worker.client.js).
    await nfWorker.visit(reg);
    sub = reg && await reg.pushManager.getSubscription();
    if (!sub) return showTurnOn(T.isOff);
    var json = sub.toJSON();
    var answer;
    try {
      answer = await post('/api/v1/subscriptions/lookup', { endpoint: json.endpoint, auth: json.keys.auth });
    } catch (e) {
      state.textContent = T.loadFailed;
      return;
    }
    if (answer.ok) {
      var found = await answer.json();
      if (speak(found.lang)) return;
      if (reg && reg.active) reg.active.postMessage({ type: 'newsflash:lang', lang: found.lang });
      return showOn(found.topics);
    }
    // Only a 404 means we have no record; a busy or failing server must not say so (nor offer
    // a Save that would sign the reader up afresh over the topics it still has).
    if (answer.status !== 404) {
      state.textContent = T.loadFailed;
      return;
    }
    state.textContent = T.noRecord;
    form.hidden = off.hidden = false;
  }

  async function turnOn(topics) {
    var permission = await Notification.requestPermission();
    if (permission === 'denied') throw fail('denied');
    if (permission !== 'granted') throw fail('dismissed');
    // Our server's fault, not the push service's: the reader should check their connection.
    var config = await bounded(fetch(API + '/api/v1/config?lang=' + LANG, { credentials: 'omit' }), 20000)
      .then(function (answer) { return answer.ok ? answer.json() : null; }, function () { throw fail('network'); });
    if (!config) throw fail('refused');
    // A worker script that did not arrive is our server out of reach (the widget's rule).
    await navigator.serviceWorker.register('/sw.js?v=' + nfWorker.VERSION, { scope: '/' }).catch(function (e) {
      throw e && (e.name === 'SecurityError' || e.name === 'NotSupportedError') ? e : fail('network');
    });
    var reg = await bounded(navigator.serviceWorker.ready, 15000);
    var key = Uint8Array.from(atob(config.vapidPublicKey.replace(/-/g, '+').replace(/_/g, '/')),
      function (c) { return c.charCodeAt(0); });
    var fresh = await bounded(reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }), 20000);
    var answer;
    try {
      answer = await bounded(post('/api/v1/subscriptions',
        Object.assign(fresh.toJSON(), { topics: topics, lang: LANG, platform: platform() })), 20000);
    } catch (e) {
      answer = null;
    }
    if (!answer || !answer.ok) {
      await fresh.unsubscribe().catch(function () {});
      throw fail(answer ? 'refused' : 'network');
    }
    tellWorker(reg);
    sub = fresh;
    remember(TURNED_OFF, null);
    remember('newsflash:dismissedAt', null);
    return (await answer.json()).topics;
  }

  on.addEventListener('click', function () {
    var topics = chosen();
    if (!topics.length) return say(T.pickOne);
    var keyboard = d.activeElement === on;
    on.disabled = true;
    say(T.working);
    var slow = setTimeout(function () { say(T.slow); }, 6000);
    turnOn(topics).then(function (saved) {
      showOn(saved);
      changed();
      say(T.signedUp.replace('{topics}', names(saved)));
      // Turn on is gone: the keyboard goes to its answer (as the widget does), not the page's top.
      if (keyboard) message.focus();
    }, function (e) {
      var code = e.nf || (/permission/i.test(e && e.message) ? 'private' : ERRORS[e && e.name] || 'push');
      if (code === 'denied' || code === 'unsupported') {
        // Turn on can never work in this browser now (the widget's rule): the page says so
        // where its state is, with no button left that only repeats the refusal.
        say('');
        showNothing(T[code]);
        state.setAttribute('tabindex', '-1');
        state.focus();
        return;
      }
      say(T[code]);
    }).then(function () {
      clearTimeout(slow);
      on.disabled = false;
      if (keyboard && !on.hidden && d.activeElement === d.body) on.focus();
    });
  });

  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    var topics = chosen();
    if (!sub) return on.click();
    if (!topics.length) return say(T.pickOneOrOff);
    var body = Object.assign(sub.toJSON(), { topics: topics, lang: LANG });
    try {
      var answer = await post('/api/v1/subscriptions', body, known ? 'PUT' : 'POST');
      if (answer.status === 404 && known) answer = await post('/api/v1/subscriptions', body);
      if (!answer.ok) throw new Error(String(answer.status));
      var saved = await answer.json();
      navigator.serviceWorker.getRegistration().then(tellWorker, function () {});
      showOn(saved.topics);
      say(T.saved.replace('{topics}', names(saved.topics)));
    } catch (e) {
      say(T.saveFailed);
    }
  });

  offButton.addEventListener('click', async function () {
    offButton.disabled = true;
    var json = sub.toJSON();
    var deleted = false;
    try {
      var answer = await post('/api/v1/subscriptions/delete', { endpoint: json.endpoint, auth: json.keys.auth });
      deleted = answer.ok || answer.status === 404;
    } catch (e) { /* the push service will tell us it is gone at the next alert */ }
    try { await sub.unsubscribe(); } catch (e) { /* already gone */ }
    // The widget then leaves this reader alone for NEWSFLASH_PROMPT_REASK_AFTER_OFF_DAYS.
    remember(TURNED_OFF, String(Date.now()));
    offButton.disabled = false;
    showTurnOn(T.offState);
    changed();
    say(deleted ? T.turnedOff : T.turnedOffLater);
    state.setAttribute('tabindex', '-1');
    state.focus();
  });

  language.querySelectorAll('button[lang]').forEach(function (button) {
    button.addEventListener('click', function () { switchTo(button.getAttribute('lang'), button); });
  });

  load().catch(function () {
    state.textContent = T.broken;
  });
})();
