// The preferences page's browser notifications switch (templates/notifications/preferences.html): asks the
// browser's permission, subscribes through the service worker's PushManager with the shop's VAPID public key,
// and sends the subscription to the shop; "Turn off" deletes it there and unsubscribes here.

const section = document.getElementById("browser-push");
if (section?.dataset.publicKey) {
  start(section).catch((error) => say(section, `Browser notifications are unavailable here: ${error.message}`));
}

function say(section, text) {
  section.querySelector("#push-status").textContent = text;
}

function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}

function sameKey(buffer, expected) {
  const bytes = new Uint8Array(buffer ?? []);
  return bytes.length === expected.length && bytes.every((byte, index) => byte === expected[index]);
}

// The token from the page's own form: the CSRF cookie is HttpOnly.
function csrfToken() {
  return document.querySelector('#preferences-form input[name="csrfmiddlewaretoken"]')?.value ?? "";
}

async function tellShop(url, method, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || `the shop answered ${response.status}`);
  return answer;
}

// Push choices reach a customer only once one of their browsers subscribed: until then the column is read-only.
function pushColumnUsable(usable) {
  for (const box of document.querySelectorAll('#preferences-form input[data-channel="push"]')) box.disabled = !usable;
  const note = document.getElementById("push-column-note");
  if (note) note.hidden = usable;
}

async function start(section) {
  const turnOn = section.querySelector("#push-turn-on");
  const turnOff = section.querySelector("#push-turn-off");
  const url = section.dataset.subscriptionUrl;
  const applicationServerKey = keyBytes(section.dataset.publicKey);
  const show = (text, { on = false, off = false } = {}) => {
    say(section, text);
    turnOn.hidden = !on;
    turnOff.hidden = !off;
  };
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    show("This browser cannot show notifications from the shop.");
    return;
  }
  const registration = await navigator.serviceWorker.register(section.dataset.serviceWorkerUrl, { scope: "/" });
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !sameKey(subscription.options?.applicationServerKey, applicationServerKey)) {
    await subscription.unsubscribe(); // made for the shop's previous key: its pushes would be refused
    subscription = null;
  }
  const render = () => {
    if (Notification.permission === "denied") {
      show("Notifications are blocked for this shop in your browser's settings.");
    } else if (subscription) {
      show("Browser notifications are on in this browser.", { off: true });
    } else {
      show("Browser notifications are off in this browser.", { on: true });
    }
  };
  if (subscription && Notification.permission === "granted") {
    // This browser may have been another customer's, or forgotten by the shop: it is this customer's now.
    const answer = await tellShop(url, "POST", subscription.toJSON());
    pushColumnUsable(answer.subscriptions > 0);
  }
  render();

  turnOn.addEventListener("click", async () => {
    turnOn.disabled = true;
    try {
      if ((await Notification.requestPermission()) !== "granted") {
        render();
        return;
      }
      await navigator.serviceWorker.ready;
      subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
      try {
        const answer = await tellShop(url, "POST", subscription.toJSON());
        pushColumnUsable(answer.subscriptions > 0);
      } catch (error) {
        await subscription.unsubscribe();
        subscription = null;
        throw error;
      }
      render();
    } catch (error) {
      show(`Browser notifications could not be turned on: ${error.message}`, { on: true });
    } finally {
      turnOn.disabled = false;
    }
  });

  turnOff.addEventListener("click", async () => {
    turnOff.disabled = true;
    try {
      const answer = await tellShop(url, "DELETE", { endpoint: subscription.endpoint });
      await subscription.unsubscribe();
      subscription = null;
      pushColumnUsable(answer.subscriptions > 0);
      render();
    } catch (error) {
      show(`Browser notifications could not be turned off: ${error.message}`, { off: true });
    } finally {
      turnOff.disabled = false;
    }
  });
}
