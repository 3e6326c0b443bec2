// How often a redraw may follow the events that ask for it.

export function debounce(ms, task) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(task, ms);
  };
}

// At most one run per `ms`, trailing: a burst of calls is one run, after `settleMs` when the last
// run is long past, else when `ms` has passed since it. A busy tenant's stream of events then costs
// the server one request per `ms`, not one per event (a debounce alone would do that for events
// spaced just past its wait, and never run for a steady stream).
export function throttle(ms, task, settleMs = 300) {
  let timer;
  let last = 0;
  return () => {
    if (timer) return;
    const wait = Math.max(settleMs, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = undefined;
      last = Date.now();
      task();
    }, wait);
  };
}
