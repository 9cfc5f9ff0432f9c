/* Newsflash manage page, readers' choices: quiet hours, a daily cap, and stories to follow.
   Every call proves the subscription is this browser's own (endpoint + auth secret). Also keeps
   every answer on the page (here and manage.js's) on the screen when it is written. */
(function () {
  'use strict';
  var d = document;
  var page = d.getElementById('nf-manage');
  var API = page.dataset.api || location.origin;
  // Saving states the reader's language as the page shows it, as the topics' Save does.
  var LANG = page.getAttribute('lang') || 'en';
  var C = JSON.parse(d.getElementById('nf-choice-texts').textContent);
  var choices = d.getElementById('nf-choices');
  var stories = d.getElementById('nf-stories');
  var quietOn = d.getElementById('nf-quiet-on');
  var start = d.getElementById('nf-quiet-start');
  var end = d.getElementById('nf-quiet-end');
  var cap = d.getElementById('nf-cap');
  var saveButton = d.getElementById('nf-choices-save');
  var list = d.getElementById('nf-story-list');
  var none = d.getElementById('nf-no-stories');
  var storiesTitle = d.getElementById('nf-stories-title');
  // Answers go next to what was pressed (on a phone the page's end is off the screen).
  var message = d.getElementById('nf-choices-message');
  var storiesMessage = d.getElementById('nf-stories-message');
  var ZONE = (Intl.DateTimeFormat().resolvedOptions().timeZone) || 'UTC';
  var ZONE_FIELD = 'quietHours.timeZone';
  var proof = null;

  function call(path, body, method) {
    return fetch(API + path, {
      method: method || 'POST', credentials: 'omit',
      headers: { 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined
    });
  }

  function times() {
    start.disabled = end.disabled = !quietOn.checked;
  }

  // The zone in the page's own words ("Saa za Afrika Mashariki", "East Africa Time"), then
  // its id, which reads the same in every language; the id alone where the browser has no name.
  function zoneName(zone) {
    try {
      var part = new Intl.DateTimeFormat(LANG, { timeZone: zone, timeZoneName: 'long' })
        .formatToParts(new Date()).find(function (p) { return p.type === 'timeZoneName'; });
      return part && part.value !== zone ? part.value + ' (' + zone + ')' : zone;
    } catch (e) {
      return zone;
    }
  }

  function summary(prefs) {
    var q = prefs.quietHours;
    return [q ? C.summaryQuiet.replace('{start}', q.start).replace('{end}', q.end) : C.summaryNoQuiet,
      prefs.dailyCap ? C.summaryCap.replace('{cap}', prefs.dailyCap) : C.summaryNoCap].join(' ');
  }

  function showPrefs(prefs) {
    var q = prefs.quietHours;
    quietOn.checked = !!q;
    if (q) { start.value = q.start; end.value = q.end; }
    // The API takes caps the list does not offer (up to 50): show such a cap as it is, or the
    // list would say "No limit" and the next Save would drop it.
    var wanted = prefs.dailyCap ? String(prefs.dailyCap) : '';
    if (wanted && ![].some.call(cap.options, function (o) { return o.value === wanted; })) {
      var extra = cap.appendChild(d.createElement('option'));
      extra.value = extra.textContent = wanted;
    }
    cap.value = wanted;
    d.getElementById('nf-zone').textContent = C.zone.replace('{zone}', zoneName(q ? q.timeZone : ZONE));
    times();
  }

  // A zone the browser names but the server's time zone database does not know (an old or
  // made-up id such as "Etc/Unknown"): the browser's clock as a fixed offset instead
  // ("Etc/GMT-3" is UTC+3, the tz database's sign), when it is a whole number of hours.
  function offsetZone() {
    var minutes = -new Date().getTimezoneOffset();
    if (minutes % 60) return null;
    var hours = minutes / 60;
    return hours === 0 ? 'UTC' : 'Etc/GMT' + (hours > 0 ? '-' : '+') + Math.abs(hours);
  }

  async function refusedField(answer) {
    if (answer.status !== 400) return null;
    try {
      var body = await answer.json();
      return body && body.error ? body.error.field : null;
    } catch (e) {
      return null;
    }
  }

  // What the server would refuse: say what to change ("try again later" would fail again).
  function quietProblem() {
    if (!quietOn.checked) return null;
    if (!start.value || !end.value) return C.quietMissing;
    return start.value === end.value ? C.quietSame : null;
  }

  async function save() {
    var problem = quietProblem();
    if (problem) {
      message.textContent = problem;
      return;
    }
    // A disabled button drops the focus to the page's top: give it back to a keyboard reader.
    var keyboard = d.activeElement === saveButton;
    saveButton.disabled = true;
    var body = Object.assign({}, proof, {
      quietHours: quietOn.checked ? { start: start.value, end: end.value, timeZone: ZONE } : null,
      dailyCap: cap.value ? Number(cap.value) : null,
      lang: LANG
    });
    try {
      var answer = await call('/api/v1/subscriptions/preferences', body, 'PUT');
      if (!answer.ok && body.quietHours && await refusedField(answer) === ZONE_FIELD) {
        var fixed = offsetZone();
        if (!fixed || fixed === ZONE) {
          message.textContent = C.zoneUnknown.replace('{zone}', ZONE);
          return;
        }
        ZONE = body.quietHours.timeZone = fixed;
        answer = await call('/api/v1/subscriptions/preferences', body, 'PUT');
      }
      if (!answer.ok) throw new Error(String(answer.status));
      var prefs = await answer.json();
      if ('serviceWorker' in navigator) {
        navigator.serviceWorker.getRegistration().then(function (reg) {
          if (reg && reg.active) reg.active.postMessage({ type: 'newsflash:remember', lang: LANG });
        }, function () {});
      }
      showPrefs(prefs);
      message.textContent = C.choicesSaved.replace('{summary}', summary(prefs));
    } catch (e) {
      message.textContent = C.choicesFailed;
    } finally {
      saveButton.disabled = false;
      if (keyboard) saveButton.focus();
    }
  }

  // The story by its title in the page's language where the newsroom wrote one, else its main
  // title, marked with that title's language (a screen reader reads it with the right sounds).
  function storyTitle(story) {
    var titles = story.titles && typeof story.titles === 'object' ? story.titles : {};
    if (typeof titles[LANG] === 'string' && titles[LANG]) return { text: titles[LANG], lang: LANG };
    return { text: story.title, lang: typeof story.lang === 'string' ? story.lang : '' };
  }

  function storyItem(story, following) {
    var item = d.createElement('li');
    var title = item.appendChild(d.createElement('span'));
    var named = storyTitle(story);
    title.textContent = named.text;
    if (named.lang && named.lang !== LANG) title.lang = named.lang;
    var button = item.appendChild(d.createElement('button'));
    button.type = 'button';
    button.className = following ? 'danger' : 'primary';
    button.dataset.story = story.key;
    button.textContent = following ? C.unfollow : C.follow;
    button.setAttribute('aria-label', (following ? C.unfollow : C.follow) + ': ' + named.text);
    if (following) {
      var mark = item.insertBefore(d.createElement('em'), button);
      mark.textContent = C.followingLabel;
    }
    button.onclick = async function () {
      var keyboard = d.activeElement === button;
      button.disabled = true;
      var answer = await call('/api/v1/stories/' + story.key + (following ? '/unfollow' : '/follow'), proof)
        .catch(function () { return null; });
      var failed = !answer || !answer.ok;
      // Offline, the list cannot be read again either: this button must not stay disabled.
      await loadStories().catch(function () { failed = true; });
      storiesMessage.textContent = failed ? C.choicesFailed : '';
      button.disabled = false;
      // The list is drawn anew: the keyboard stays on this story (its button now says the
      // other thing), not thrown to the page's top.
      var again = list.querySelector('button[data-story="' + story.key + '"]');
      if (keyboard) (again || storiesTitle).focus();
    };
    return item;
  }

  async function loadStories() {
    var open = await (await call('/api/v1/stories/open', null, 'GET')).json();
    var mine = await (await call('/api/v1/subscriptions/stories', proof)).json();
    var followed = {};
    mine.stories.forEach(function (s) { followed[s.key] = true; });
    var shown = open.stories.concat(mine.stories.filter(function (s) {
      return s.open && !open.stories.some(function (o) { return o.key === s.key; });
    }));
    list.replaceChildren.apply(list, shown.map(function (s) { return storyItem(s, !!followed[s.key]); }));
    none.hidden = shown.length > 0;
    stories.hidden = false;
  }

  async function load() {
    choices.hidden = stories.hidden = true;
    proof = null;
    var reg = 'serviceWorker' in navigator && await navigator.serviceWorker.getRegistration();
    var sub = reg && reg.pushManager && await reg.pushManager.getSubscription();
    if (!sub) return;
    var json = sub.toJSON();
    var mine = { endpoint: json.endpoint, auth: json.keys.auth };
    var answer = await call('/api/v1/subscriptions/preferences', mine);
    if (!answer.ok) return;
    proof = mine;
    showPrefs(await answer.json());
    choices.hidden = false;
    await loadStories();
  }

  // An answer written just under a button at the screen's edge would be below it on a phone:
  // bring it into view (no scroll when it is already seen).
  var shown = new MutationObserver(function (changes) {
    changes.forEach(function (c) {
      var box = c.target.nodeType === 1 ? c.target : c.target.parentNode;
      if (box.textContent) box.scrollIntoView({ block: 'nearest' });
    });
  });
  page.querySelectorAll('.message[role=status]').forEach(function (box) {
    shown.observe(box, { childList: true, characterData: true, subtree: true });
  });

  quietOn.addEventListener('change', times);
  saveButton.addEventListener('click', save);
  // manage.js says when this browser's subscription changed (turned on or off).
  d.addEventListener('newsflash:subscription', function () { load().catch(function () {}); });
  load().catch(function () {});
})();
