/* Newsflash manage page: shows this browser's topics, changes them, or turns alerts off. */
(function () {
  'use strict';
  var d = document;
  var page = d.getElementById('nf-manage');
  var API = page.dataset.api || location.origin;
  var state = d.getElementById('nf-state');
  var form = d.getElementById('nf-form');
  var off = d.getElementById('nf-off');
  var offButton = d.getElementById('nf-off-button');
  var message = d.getElementById('nf-message');
  var sub = null;
  var known = false;

  function say(text) {
    message.textContent = text;
  }

  function post(path, body, method) {
    return fetch(API + path, {
      method: method || 'POST', credentials: 'omit',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body)
    });
  }

  function names(slugs) {
    return [].slice.call(form.querySelectorAll('input')).filter(function (b) {
      return slugs.indexOf(b.value) >= 0;
    }).map(function (b) { return b.parentNode.textContent.trim(); }).join(', ');
  }

  function setChecked(slugs) {
    form.querySelectorAll('input').forEach(function (b) { b.checked = slugs.indexOf(b.value) >= 0; });
  }

  function showOff(text) {
    form.hidden = true;
    off.hidden = true;
    state.textContent = text;
  }

  async function load() {
    if (!('serviceWorker' in navigator) || !('PushManager' in window)) {
      return showOff("This browser can't receive news alerts from us.");
    }
    var reg = await navigator.serviceWorker.getRegistration();
    sub = reg && await reg.pushManager.getSubscription();
    if (!sub) return showOff('Alerts are off in this browser. To turn them on, use the "Yes, Thanks" button on any article.');
    var json = sub.toJSON();
    var answer;
    try {
      answer = await post('/api/v1/subscriptions/lookup', { endpoint: json.endpoint, auth: json.keys.auth });
    } catch (e) {
      state.textContent = "We couldn't reach our server to load your topics. Please try again later.";
      return;
    }
    if (answer.ok) {
      known = true;
      var saved = await answer.json();
      setChecked(saved.topics);
      state.textContent = 'Alerts are on in this browser. You get alerts about: ' + names(saved.topics) + '.';
    } else {
      state.textContent = "Alerts are allowed in this browser, but we have no topics on record for it. Choose topics and save to receive alerts again.";
    }
    form.hidden = false;
    off.hidden = false;
  }

  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    var topics = [].slice.call(form.querySelectorAll('input:checked')).map(function (b) { return b.value; });
    if (!topics.length) {
      say('Choose at least one topic, or turn alerts off below.');
      return;
    }
    var body = Object.assign(sub.toJSON(), { topics: topics });
    try {
      var answer = await post('/api/v1/subscriptions', body, known ? 'PUT' : 'POST');
      if (answer.status === 404 && known) answer = await post('/api/v1/subscriptions', body);
      if (!answer.ok) throw new Error(String(answer.status));
      var saved = await answer.json();
      known = true;
      setChecked(saved.topics);
      state.textContent = 'Alerts are on in this browser. You get alerts about: ' + names(saved.topics) + '.';
      say('Saved. You will get alerts about: ' + names(saved.topics) + '.');
    } catch (e) {
      say("We couldn't save your topics just now. Please try again later.");
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
    showOff('Alerts are off. You will not get any more notifications from us in this browser.');
    say(deleted ? 'Alerts turned off.' : 'Alerts turned off in this browser. Our server will forget it at the next alert.');
    state.setAttribute('tabindex', '-1');
    state.focus();
  });

  load().catch(function () {
    state.textContent = "Something went wrong while checking this browser's alerts. Please reload the page.";
  });
})();
