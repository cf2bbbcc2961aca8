"""Distillation: the Distiller, its losses and teacher sources."""

from tfdistill.distill.distiller import Distiller
from tfdistill.distill.distiller import StopOnNaN
from tfdistill.distill.embedding_transfer import transfer_item_embeddings
from tfdistill.distill.ranking_losses import RankingDistillation
from tfdistill.distill.ranking_losses import RelaxedRankingDistillation
from tfdistill.distill.representation_losses import ContrastiveAlignment
from tfdistill.distill.representation_losses import HintDistillation
from tfdistill.distill.representation_losses import PointwiseScoreDistillation
from tfdistill.distill.soft_targets import DistillationLoss
from tfdistill.distill.soft_targets import ListwiseDistillation
from tfdistill.distill.soft_targets import MASKED_LOGIT
from tfdistill.distill.soft_targets import SoftTargetKL
from tfdistill.distill.soft_targets import SoftTargetMSE
from tfdistill.distill.teachers import CachedTeacher
from tfdistill.distill.teachers import OnlineTeacher
from tfdistill.distill.teachers import TaskTeachers
from tfdistill.distill.teachers import TeacherEnsemble
from tfdistill.distill.teachers import TeacherSource
from tfdistill.distill.external import IndexTeacher
from tfdistill.distill.external import ItemAlignment
from tfdistill.distill.external import RatingTeacher
from tfdistill.distill.external import SavedModelTeacher
from tfdistill.distill.external import TowerTeacher
