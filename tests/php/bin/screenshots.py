"""Screenshots of the Molam Form plugin in wp-admin for docs/woocommerce.md (Chromium, headless).

Run through ``tests/php/run --screenshots docs/img/woocommerce``: the throwaway WordPress is
served by ``php -S``; this logs in, uploads the plugin zip on Plugins > Add New > Upload,
activates it, fills the settings page and shows the notice after a rollback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from tests.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


def main(out_dir: Path, zip_path: Path) -> None:
    """Drive wp-admin and write the PNGs."""
    url = os.environ["MOLAM_TEST_WP_URL"]
    password = "admin-password-" + os.environ["MOLAM_TEST_DB_NAME"]
    out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(f"{url}/wp-login.php")
        page.fill("#user_login", "admin")
        page.fill("#user_pass", password)
        page.click("#wp-submit")
        page.wait_for_url("**/wp-admin/**")

        page.goto(f"{url}/wp-admin/plugin-install.php?tab=upload")
        page.set_input_files("#pluginzip", str(zip_path))
        page.screenshot(path=str(out_dir / "1-upload.png"))
        page.click("#install-plugin-submit")
        page.wait_for_selector("text=Plugin installed successfully")
        page.screenshot(path=str(out_dir / "2-installed.png"))
        page.click("a.button-primary:has-text('Activate Plugin')")
        page.wait_for_selector("#message")

        page.goto(f"{url}/wp-admin/options-general.php?page=molam-form")
        page.fill("#molam-form-api_url", os.environ["MOLAM_TEST_CP_URL"])
        page.fill("#molam-form-merchant_id", os.environ["MOLAM_TEST_MERCHANT"])
        page.fill("#molam-form-token", os.environ["MOLAM_TEST_PLUGIN_TOKEN"])
        page.fill("#molam-form-public_key", os.environ["MOLAM_SCREENSHOT_PUBLIC_KEY"])
        page.fill("#molam-form-plugin_slug", "molam-gateway")
        page.click("#submit")
        page.wait_for_selector("text=Settings saved")
        html = page.content()
        if os.environ["MOLAM_TEST_PLUGIN_TOKEN"] in html:
            sys.exit("the settings page echoed the token")
        page.screenshot(path=str(out_dir / "3-settings.png"), full_page=True)

        subprocess.run(
            [
                "php",
                "-r",
                '$_SERVER["HTTP_HOST"]="127.0.0.1"; require getenv("MOLAM_TEST_WP_DIR") . "/wp-load.php";'
                ' update_option("molam_form_last_rollback", ["at" => time(), "from" => "4.0.0", "to" => "3.9.0",'
                ' "trigger" => "automatic", "reason" => "smoke test failed: health URL answered HTTP 503",'
                ' "success" => true, "error" => null], false);',
            ],
            check=True,
        )
        page.goto(f"{url}/wp-admin/plugins.php")
        page.screenshot(
            path=str(out_dir / "4-rollback-notice.png"), clip={"x": 0, "y": 0, "width": 1100, "height": 420}
        )
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
