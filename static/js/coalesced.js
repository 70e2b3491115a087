// Work a page redoes when news arrives (refetching a list): never two at once, and the calls made during one run
// make one more run after it, so the last news is always covered however many came.

export function coalesced(work) {
  let running = false;
  let again = false;
  return async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await work();
      } while (again);
    } finally {
      running = false;
    }
  };
}
