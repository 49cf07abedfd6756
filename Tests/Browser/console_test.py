#!/usr/bin/python3
"""Loa's console in a real browser: Debian's chromium driven by chromium-driver through python3-selenium.

Run by Tests/IntegrationTests/ConsoleBrowserTests.swift against a real `loa daemon` in front of a real Kannel; it
can be run by hand against any daemon with the same environment:

  LOA_CONSOLE_URL   the console, e.g. http://127.0.0.1:PORT/console/
  LOA_API_TOKEN     the daemon's admin token (only to read states through the API, never to act)
  LOA_PASSWORD      the password of the four users below
  LOA_PLANNER, LOA_APPROVER, LOA_OPERATOR, LOA_VIEWER   their user names
  LOA_CAMPAIGN      the id of the campaign the planner creates
  LOA_TEMPLATE      its template text
  LOA_SEGMENTS      the two segment files, separated by ':'
  LOA_PROOF         a proof number for the approver's test send
  LOA_ARTIFACTS     where screenshots, downloads and result.json go

Every wait is a WebDriverWait with a deadline (no sleeps). It prints each step and, at the end, the counts of
steps and assertions; result.json holds what the page showed (the preview numbers) for the Swift side to compare.
"""
import base64
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request

# The integration harness points proxy variables at a dead port; the driver's own HTTP client must not use them.
for k in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(k, None)
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ENV = os.environ
URL = ENV["LOA_CONSOLE_URL"]
BASE = URL.split("/console")[0]
ART = ENV["LOA_ARTIFACTS"]
DOWNLOADS = os.path.join(ART, "downloads")
CAMPAIGN = ENV["LOA_CAMPAIGN"]
PASSWORD = ENV["LOA_PASSWORD"]
os.makedirs(DOWNLOADS, exist_ok=True)

counts = {"steps": 0, "assertions": 0}
shots = []
result = {"screenshots": shots}


def step(name):
    counts["steps"] += 1
    print("step %d: %s" % (counts["steps"], name), flush=True)


def check(cond, what):
    counts["assertions"] += 1
    if not cond:
        raise AssertionError(what)


def api(path, method="GET"):
    """The API as the admin: only to read what the server holds (states, the audit trail), never to act."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(BASE + path, method=method, headers={"Authorization": "Bearer " + ENV["LOA_API_TOKEN"]})
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def campaign_state():
    status, c = api("/api/v1/campaigns/" + CAMPAIGN)
    return c.get("state") if status == 200 and c else None


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    o.add_argument("--headless=new")
    if os.geteuid() == 0:
        o.add_argument("--no-sandbox")  # chromium refuses to run as root with its sandbox
    for a in ("--window-size=1280,1100", "--disable-gpu", "--disable-dev-shm-usage", "--no-proxy-server", "--lang=vi",
              "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        o.add_argument(a)
    o.add_experimental_option("prefs", {"download.default_directory": DOWNLOADS, "download.prompt_for_download": False})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": DOWNLOADS})
    return d


def main():
    d = browser()
    wait = WebDriverWait(d, 30, poll_frequency=0.1)
    by_css = lambda s: d.find_element(By.CSS_SELECTOR, s)  # noqa: E731
    all_css = lambda s: d.find_elements(By.CSS_SELECTOR, s)  # noqa: E731

    def shot(name):
        """The whole page, not only the window (Chrome DevTools: captureScreenshot beyond the viewport)."""
        path = os.path.join(ART, name + ".png")
        size = d.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        png = d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}})
        with open(path, "wb") as f:
            f.write(base64.b64decode(png["data"]))
        shots.append(path)

    def visible(sel):
        return wait.until(lambda _: (lambda e: e if e and e[0].is_displayed() else False)(all_css(sel)), "visible: " + sel)[0]

    def text_contains(sel, text, seconds=30):
        WebDriverWait(d, seconds, 0.1).until(lambda _: any(text in e.text for e in all_css(sel)), "%s contains %r" % (sel, text))

    def click(sel):
        """Clicks the element `sel` names when it is there and clickable (a refresh may have just replaced it)."""
        WebDriverWait(d, 30, 0.1, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda _: (by_css(sel).click() or True) if all_css(sel) else False, "click " + sel)

    def login(user):
        visible("#login-user")
        by_css("#login-user").clear()
        by_css("#login-user").send_keys(user)
        by_css("#login-password").clear()
        by_css("#login-password").send_keys(PASSWORD + Keys.ENTER)   # the keyboard submits the form
        wait.until(lambda _: by_css("#logout").is_displayed(), "logged in as " + user)

    def logout():
        by_css("#logout").click()
        visible("#login-user")

    def forced(path):
        """A request the page's own API layer sends (with the session's CSRF token): the status and the flash."""
        status = d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "Loa.post(arguments[0]).then(() => done(200), (e) => done(e.status));", path)
        return status

    def numbers(box):
        totals = {e.get_attribute("data-field"): int(e.get_attribute("data-value") or -1)
                  for e in all_css(box + " table.totals td[data-field]")}
        tables = {}
        for t in all_css(box + " table[data-field]"):
            f = t.get_attribute("data-field")
            if f in ("totals", "samples"):
                continue
            tables[f] = {r.get_attribute("data-key"): int(r.get_attribute("data-value")) for r in t.find_elements(By.CSS_SELECTOR, "tr[data-key]")}
        samples = len(all_css(box + " table.samples tbody tr"))
        return {"totals": totals, "tables": tables, "samples": samples}

    try:
        step("the login page, Vietnamese by default, English on the toggle")
        d.get(URL)
        wait.until(lambda _: d.execute_script("return document.body.dataset.ready") == "true", "the console to start")
        visible("#login-user")
        check(d.execute_script("return document.documentElement.lang") == "vi", "the page is Vietnamese by default")
        check(by_css("#login-h").text == "Đăng nhập", "the login title in Vietnamese: " + by_css("#login-h").text)
        unlabelled = d.execute_script(
            "return Array.from(document.querySelectorAll('input, select, textarea')).filter(e =>"
            " !(e.id && document.querySelector('label[for=\"' + e.id + '\"]')) && !e.getAttribute('aria-label')).map(e => e.id || e.outerHTML)")
        check(unlabelled == [], "every input has a label: %r" % unlabelled)
        shot("01-login")
        by_css("#lang").click()
        text_contains("#login-h", "Log in")
        check(d.execute_script("return document.documentElement.lang") == "en", "English after the toggle")
        by_css("#lang").click()
        text_contains("#login-h", "Đăng nhập")

        step("a wrong password is refused with a clear message")
        by_css("#login-user").send_keys(ENV["LOA_PLANNER"])
        by_css("#login-password").send_keys("not-the-password" + Keys.ENTER)
        text_contains("#login-error", "Sai tên người dùng hoặc mật khẩu")
        check(not by_css("#logout").is_displayed(), "still logged out")
        shot("02-login-refused")

        step("the planner logs in: the planner's page, no approve or audit tabs")
        login(ENV["LOA_PLANNER"])
        visible("#view-planner")
        check(not by_css("#tab-approver").is_displayed() and not by_css("#tab-audit").is_displayed(), "a planner has no approver or audit tab")
        csrf = d.execute_script("return Loa.session.csrf")
        check(isinstance(csrf, str) and len(csrf) >= 16, "the session has a CSRF token")
        check(d.execute_script("return document.cookie").find("loa_session") < 0, "the session cookie is HttpOnly (not in document.cookie)")

        step("the planner writes the template: live preview from the daemon")
        by_css("#c-id").send_keys(CAMPAIGN)
        by_css("#c-name").send_keys("Góp ý dự thảo")
        by_css("#c-windows").clear()
        by_css("#c-windows").send_keys("00:00-24:00")
        by_css("#c-template").send_keys(ENV["LOA_TEMPLATE"])
        text_contains("#tpl-facts", "phần")
        check("Nguyễn Văn An" in by_css("#tpl-text").text, "the preview renders the sample fields: " + by_css("#tpl-text").text)

        step("two segments: one by the file picker, one dropped on the drop zone")
        first, second = ENV["LOA_SEGMENTS"].split(":")
        by_css("#seg-files").send_keys(first)
        # A drop: the file reaches the page through a scratch input, then a real `drop` event carries it.
        d.execute_script("const i = document.createElement('input'); i.type = 'file'; i.id = 'scratch-drop'; document.body.append(i);")
        by_css("#scratch-drop").send_keys(second)
        d.execute_script(
            "const dt = new DataTransfer(); dt.items.add(document.getElementById('scratch-drop').files[0]);"
            "document.getElementById('dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));"
            "document.getElementById('scratch-drop').remove();")
        wait.until(lambda _: len(all_css("#seg-list tr")) == 2, "two files listed")
        by_css("#c-upload").click()

        step("upload with progress, then the preview numbers")
        visible("#planner-review")
        wait.until(lambda _: all(int(p.get_attribute("value") or 0) == 100 for p in all_css("#seg-list progress")), "both uploads at 100%")
        check(all(r.text for r in all_css("#seg-list td.result")), "each file has its counts")
        planner_numbers = numbers("#planner-preview")
        result["planner_preview"] = planner_numbers
        check(planner_numbers["totals"].get("recipients", 0) > 0, "recipients shown: %r" % planner_numbers)
        check(planner_numbers["samples"] > 0, "sample messages shown")
        shot("03-planner-preview")

        step("the planner submits for approval")
        by_css("#c-submit").click()
        text_contains("#submit-status", "chờ phê duyệt")
        check(campaign_state() == "pending-approval", "pending-approval through the API")

        step("the planner's own approve is refused (403), shown as a clear message")
        status = forced("/api/v1/campaigns/%s/approve" % CAMPAIGN)
        result["planner_approve_status"] = status
        check(status == 403, "the planner's approve answered %r" % status)
        text_contains("#flash", "403")
        check(campaign_state() == "pending-approval", "still pending-approval")
        shot("04-planner-approve-refused")
        logout()

        step("the approver reviews the same numbers and samples")
        login(ENV["LOA_APPROVER"])
        visible("#view-approver")
        button = wait.until(lambda _: [b for b in all_css("#pending-list button[data-action=review]") if b.get_attribute("data-campaign") == CAMPAIGN],
                            "the campaign in the pending list")[0]
        button.click()
        visible("#approver-preview table.totals")
        approver_numbers = numbers("#approver-preview")
        result["approver_preview"] = approver_numbers
        check(approver_numbers == planner_numbers, "the approver sees the planner's numbers: %r vs %r" % (approver_numbers, planner_numbers))

        step("the approver test-sends to a proof number")
        by_css("#ts-numbers").send_keys(ENV["LOA_PROOF"])
        by_css("#ts-send").click()
        text_contains("#ts-status", CAMPAIGN + "--test-")
        shot("05-approver-review")

        step("the approver approves with a comment")
        by_css("#ap-comment").send_keys("Đồng ý gửi")
        by_css("#ap-approve").click()
        wait.until(lambda _: campaign_state() in ("scheduled", "running", "completed"), "approved through the API")
        text_contains("#ap-status", CAMPAIGN)
        logout()

        step("the operator pauses from the dashboard while it runs")
        login(ENV["LOA_OPERATOR"])
        visible("#view-dashboard")
        pause_sel = "#campaign-list button[data-action=pause][data-campaign='%s']" % CAMPAIGN
        WebDriverWait(d, 60, 0.1).until(lambda _: all_css(pause_sel) and campaign_state() == "running", "the campaign running with a pause button")
        click("#campaign-list button[data-action=open][data-campaign='%s']" % CAMPAIGN)
        visible("#detail")
        click(pause_sel)
        wait.until(lambda _: campaign_state() == "paused", "paused through the API")
        text_contains("#campaign-list tr[data-campaign='%s'] [data-field=state]" % CAMPAIGN, "tạm dừng")
        check(all_css("#campaign-list button[data-action=resume][data-campaign='%s']" % CAMPAIGN), "a resume button while paused")
        check(not all_css("#campaign-list button[data-action=cancel]"), "an operator has no cancel button")
        shot("06-dashboard-paused")
        logout()

        step("the viewer sees no pause or resume button; a forced pause is 403 and changes nothing")
        login(ENV["LOA_VIEWER"])
        visible("#view-dashboard")
        wait.until(lambda _: all_css("#campaign-list tr[data-campaign='%s']" % CAMPAIGN), "the campaign listed for the viewer")
        check(not all_css("#campaign-list button[data-action=pause]") and not all_css("#campaign-list button[data-action=resume]"),
              "a viewer has no pause or resume button")
        check(not by_css("#tab-planner").is_displayed() and not by_css("#tab-approver").is_displayed(), "a viewer has only the dashboard")
        status = forced("/api/v1/campaigns/%s/resume" % CAMPAIGN)
        result["viewer_resume_status"] = status
        check(status == 403, "the viewer's resume answered %r" % status)
        status = forced("/api/v1/campaigns/%s/pause" % CAMPAIGN)
        result["viewer_pause_status"] = status
        check(status == 403, "the viewer's pause answered %r" % status)
        text_contains("#flash", "403")
        check(campaign_state() == "paused", "still paused after the viewer's requests")
        shot("07-viewer-forbidden")
        logout()

        step("the operator resumes; the live log shows receipts; the campaign completes")
        login(ENV["LOA_OPERATOR"])
        visible("#view-dashboard")
        resume = "#campaign-list button[data-action=resume][data-campaign='%s']" % CAMPAIGN
        wait.until(lambda _: all_css(resume), "the resume button")
        click("#campaign-list button[data-action=open][data-campaign='%s']" % CAMPAIGN)
        click(resume)
        wait.until(lambda _: campaign_state() in ("running", "completed"), "resumed through the API")
        WebDriverWait(d, 120, 0.2).until(lambda _: all_css("#log li[data-event=receipt]"), "a receipt in the live log")
        WebDriverWait(d, 180, 0.2).until(lambda _: campaign_state() == "completed", "the campaign completed")
        text_contains("#campaign-list tr[data-campaign='%s'] [data-field=state]" % CAMPAIGN, "hoàn tất", seconds=15)
        result["log_receipts"] = len(all_css("#log li[data-event=receipt]"))
        result["log_lines"] = len(all_css("#log li"))
        check(all_css("#detail-carriers tbody tr"), "progress per carrier shown")

        def ward_delivered():
            rows = {}
            for r in all_css("#detail-wards tbody tr[data-key]"):
                cell = r.find_elements(By.CSS_SELECTOR, "td[data-state=delivered]")
                rows[r.get_attribute("data-key")] = int(cell[0].text.replace(".", "").replace(",", "")) if cell else 0
            return rows
        # Progress per ward comes from the report, read again every 15 s while the campaign is open.
        WebDriverWait(d, 60, 0.5, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda _: sum(ward_delivered().values()) == 60, "per-ward progress to reach 60 delivered")
        result["ward_delivered"] = ward_delivered()
        check(len(result["ward_delivered"]) == 2, "progress per ward: two wards, %r" % result["ward_delivered"])
        check(all_css("#carrier-list tr"), "carriers' health shown")
        shot("08-dashboard-live-log")

        step("the report downloads as CSV")
        target = os.path.join(DOWNLOADS, "loa-report-%s.csv" % CAMPAIGN)
        by_css("#report-csv").click()
        WebDriverWait(d, 30, 0.1).until(lambda _: os.path.exists(target) and not os.path.exists(target + ".crdownload"), "the CSV download")
        with open(target, encoding="utf-8") as f:
            lines = [l for l in f.read().splitlines() if l]
        result["report_rows"] = len(lines) - 1
        result["report_path"] = target
        check(lines[0].startswith("message_id,recipient,carrier,final_state"), "the CSV header: " + lines[0])
        visible("#report-summary table")
        by_css("#lang").click()
        text_contains("#dash-h", "Campaign dashboard")
        shot("09-dashboard-english")
        by_css("#lang").click()
        logout()

        step("the approver reads the audit trail and exports it")
        login(ENV["LOA_APPROVER"])
        by_css("#tab-audit").click()
        visible("#view-audit")
        by_css("#au-campaign").send_keys(CAMPAIGN + Keys.ENTER)
        wait.until(lambda _: all_css("#audit-list tr[data-action='campaign.resume']"), "the resume in the audit trail")
        seen = [(r.get_attribute("data-action"), r.get_attribute("data-user")) for r in all_css("#audit-list tr")]
        result["audit_page"] = seen
        for action, user in (("campaign.create", "LOA_PLANNER"), ("campaign.submit", "LOA_PLANNER"), ("campaign.approve", "LOA_APPROVER"),
                             ("campaign.pause", "LOA_OPERATOR"), ("campaign.resume", "LOA_OPERATOR")):
            check((action, ENV[user]) in seen, "%s by %s on the audit page: %r" % (action, ENV[user], seen))
        by_css("#au-export").click()
        audit_csv = os.path.join(DOWNLOADS, "loa-audit.csv")
        WebDriverWait(d, 30, 0.1).until(lambda _: os.path.exists(audit_csv) and not os.path.exists(audit_csv + ".crdownload"), "the audit export")
        with open(audit_csv, encoding="utf-8") as f:
            exported = f.read()
        check("campaign.approve" in exported and ENV["LOA_APPROVER"] in exported, "the export holds the approval")
        shot("10-audit")
        logout()

        step("no Content-Security-Policy refusal and no script error in the whole run")
        problems = [e["message"] for e in d.get_log("browser")
                    if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]]
        check(problems == [], "the browser console: %r" % problems)
        result["ok"] = True
    except (AssertionError, TimeoutException) as e:
        result["ok"] = False
        result["failure"] = "%s: %s" % (type(e).__name__, e)
        print("FAILED at step %d: %s" % (counts["steps"], result["failure"]), flush=True)
        traceback.print_exc()
        try:
            shot("failure")
            with open(os.path.join(ART, "failure.html"), "w", encoding="utf-8") as f:
                f.write(d.page_source)
            for entry in d.get_log("browser"):
                print("browser console:", entry, flush=True)
        except Exception:  # the report of the failure matters more than a failed screenshot
            pass
    finally:
        result.update(counts)
        with open(os.path.join(ART, "result.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False, indent=1)
        d.quit()
    print("browser test: %d steps, %d assertions, %s; screenshots in %s" % (counts["steps"], counts["assertions"],
          "passed" if result["ok"] else "FAILED", ART), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
