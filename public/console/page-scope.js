// What the page on screen listens to (stream events) and repeats (timers); all of it is dropped
// when the page changes, so a page left behind never redraws or calls the API again.
import { stream } from "./stream.js";

let listeners = [];
let timers = [];

export function onEvent(listener) {
  stream.listeners.add(listener);
  listeners.push(listener);
}

/** Runs `task` every `ms` while the page is shown; the interval's id, to clear it sooner. */
export function every(ms, task) {
  const timer = setInterval(task, ms);
  timers.push(timer);
  return timer;
}

export function leavePage() {
  for (const l of listeners) stream.listeners.delete(l);
  listeners = [];
  for (const t of timers) clearInterval(t);
  timers = [];
}
