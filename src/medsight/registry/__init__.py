"""Model registry: verified bundle copies with versions and stages (candidate, production,
archived), one production model per task, promotion and rollback in one audited transaction.
"""

from __future__ import annotations

from medsight.registry.bundles import BundleInfo, inspect_bundle
from medsight.registry.service import ModelRegistry

__all__ = ["BundleInfo", "ModelRegistry", "inspect_bundle"]
