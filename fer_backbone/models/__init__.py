"""FER models: timm backbones with local checkpoints, SCN and SLM-AEA heads."""

from fer_backbone.models.backbone import Backbone, LoadReport, load_checkpoint_into
from fer_backbone.models.heads import ExpressionAnchor, ImportanceHead

__all__ = ["Backbone", "ExpressionAnchor", "ImportanceHead", "LoadReport", "load_checkpoint_into"]
