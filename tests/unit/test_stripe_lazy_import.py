"""The ``stripe`` library is loaded only by the Stripe adapter, which the registry imports on the
first use of a Stripe account: a function that never speaks to Stripe never pays for it."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT

CREDENTIALS = (
    "{'secret_key': 'sk_test_x', 'webhook_secret': 'whsec_x', "
    "'api_base_url': 'http://127.0.0.1:9', 'simulator': True}"
)


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    env = {"PYTHONPATH": f"{ROOT / 'layers' / 'paycore'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    return set(done.stdout.split())


def _stripe_sdk(modules: set[str]) -> set[str]:
    return {name for name in modules if name == "stripe" or name.startswith("stripe.")}


def test_importing_the_registry_does_not_import_stripe() -> None:
    loaded = _modules_after("import paycore.channels.registry")

    assert "paycore.channels.registry" in loaded
    assert _stripe_sdk(loaded) == set()
    assert not {name for name in loaded if name.startswith("paycore.channels.stripe")}


def test_the_stripe_packages_light_modules_do_not_import_stripe_either() -> None:
    loaded = _modules_after(
        "import paycore.channels.stripe.transformers, paycore.channels.stripe.settings"
    )

    assert _stripe_sdk(loaded) == set()


def test_the_first_stripe_gateway_imports_the_adapter_and_the_sdk() -> None:
    loaded = _modules_after(
        "from paycore.channels.registry import FACTORIES\n"
        "from paycore.config import Settings\n"
        f"FACTORIES['stripe']('stripe-a', {CREDENTIALS}, Settings())"
    )

    assert "paycore.channels.stripe.adapter" in loaded
    assert "stripe" in loaded
    assert not {name for name in loaded if name.startswith("paycore.channels.sandbox")}
