#!/usr/bin/env python
"""Page-less demo client: log in as a shop user and print every notification frame.

    .venv/bin/python scripts/listen.py alice            # password: the demo password
    .venv/bin/python scripts/listen.py alice --after 0  # replay everything first

It connects to the port `python -m shop.web` listens on (WEB_PORT, else 8000); --port or --base say otherwise.
Then change one of alice's orders in the admin (/admin/ on that port, user staff).
"""

import argparse
import asyncio
import http.cookiejar
import os
import re
import sys
import urllib.parse
import urllib.request

from websockets.asyncio.client import connect

DEMO_PASSWORD = "shop-demo-pass"


def log_in(base: str, username: str, password: str) -> str:
    """Log in through the real login form and return the session cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
    opener.open(urllib.request.Request(f"{base}/accounts/login/", data=form.encode(), headers={"Referer": base}))
    cookies = {cookie.name: cookie.value for cookie in jar}
    if "sessionid" not in cookies:
        sys.exit("Login failed: wrong username or password?")
    return cookies["sessionid"]


async def listen(base: str, session: str, after: int | None) -> None:
    url = base.replace("http", "ws", 1) + "/ws/notifications/" + (f"?after={after}" if after is not None else "")
    headers = {"Cookie": f"sessionid={session}", "Origin": base}
    async with connect(url, additional_headers=headers) as socket:
        async for frame in socket:
            print(frame, flush=True)
        print(f"closed: {socket.close_code} {socket.close_reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("username")
    parser.add_argument("--password", default=DEMO_PASSWORD)
    parser.add_argument("--port", type=int, default=int(os.environ.get("WEB_PORT") or 8000))
    parser.add_argument("--base", help="the shop's address (default: http://127.0.0.1:<port>)")
    parser.add_argument("--after", type=int)
    args = parser.parse_args()
    base = args.base or f"http://127.0.0.1:{args.port}"
    asyncio.run(listen(base, log_in(base, args.username, args.password), args.after))


if __name__ == "__main__":
    main()
