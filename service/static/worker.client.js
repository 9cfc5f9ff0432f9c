/* The pages' side of the conversation with the service worker (sw.js). Not served alone:
   service/reader.py puts it at the head of newsflash.js and manage.js, inside one function
   with each, so the widget stays the one file publishers embed and adds no global. */
var nfWorker = (function () {
  'use strict';
  // The worker the pages expect (sw.js's VERSION): they register it as sw.js?v=VERSION. Raise
  // both whenever the messages between them change.
  var VERSION = '2';

  // A visit is the service worker's next chance to finish what it could not do offline (move
  // this reader's record to a renewed subscription, notice one the browser renewed silently);
  // it answers with the language of the reader's alerts. A worker registered with another
  // version (from before a deploy) may never answer: the current one replaces it (the same
  // script URL and scope, ?v= changed), and is asked once it runs, within a bound.
  function visit(reg) {
    if (!reg || !reg.active || typeof MessageChannel === 'undefined') return Promise.resolve({});
    var url = new URL(reg.active.scriptURL);
    if (url.searchParams.get('v') === VERSION) return ask(reg.active, 5000);
    url.searchParams.set('v', VERSION);
    var fresh = navigator.serviceWorker.register(url.href, { scope: reg.scope }).then(running);
    return within(fresh, 3000, null).then(function (w) { return ask(w, 2000); }, function () { return {}; });
  }

  function ask(worker, ms) {
    return new Promise(function (resolve) {
      if (!worker) return resolve({});
      var channel = new MessageChannel();
      var timer = setTimeout(function () { resolve({}); }, ms);
      channel.port1.onmessage = function (e) { clearTimeout(timer); resolve(e.data || {}); };
      worker.postMessage({ type: 'newsflash:visit' }, [channel.port2]);
    });
  }

  // The registration's newest worker once it is installed (null if that failed). It answers
  // as soon as it is: Chromium activates it only once the old worker is idle, checked each
  // second.
  function running(reg) {
    var w = reg.installing || reg.waiting || reg.active;
    return new Promise(function (resolve) {
      if (!w || w.state !== 'installing') return resolve(w && w.state !== 'redundant' ? w : null);
      w.addEventListener('statechange', function () { resolve(w.state !== 'redundant' ? w : null); });
    });
  }

  function within(promise, ms, fallback) {
    return Promise.race([promise, new Promise(function (resolve) { setTimeout(resolve, ms, fallback); })]);
  }

  return { VERSION: VERSION, visit: visit };
})();
