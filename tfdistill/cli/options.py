"""Every command-line flag (option), and the one place that turns flags into configs."""

from absl import flags

from tfdistill.data.prepare import PrepareConfig
from tfdistill.data.sources import dataset_names
from tfdistill.data.sources import SourceConfig
from tfdistill.data.synthetic import SyntheticConfig

FLAGS = flags.FLAGS

# Data.
flags.DEFINE_string(
    "dataset", "synthetic",
    f"Data source: {', '.join(dataset_names())}.")
flags.DEFINE_string("path", None,
                    "File for --dataset=grouplens (u.data, ratings.dat, "
                    "ratings.csv), csv or parquet.")
flags.DEFINE_string("columns", None,
                    "Column mapping for csv/parquet, e.g. "
                    "user_id=uid,item_id=iid,timestamp=ts,rating=")
flags.DEFINE_string("data_dir", None, "TFDS cache directory.")
flags.DEFINE_string("manual_dir", None,
                    "Folder holding the GroupLens zip, for offline TFDS "
                    "preparation (e.g. ../shared/data/movielens).")
flags.DEFINE_integer("synthetic_users", SyntheticConfig.num_users,
                     "Users in the synthetic data set.")
flags.DEFINE_integer("synthetic_items", SyntheticConfig.num_items,
                     "Items in the synthetic data set.")
flags.DEFINE_float("synthetic_interactions_per_user",
                   SyntheticConfig.mean_interactions_per_user,
                   "Mean interactions per user in the synthetic data set.")
flags.DEFINE_integer("min_user_interactions",
                     PrepareConfig.min_user_interactions,
                     "Drop users with fewer interactions (>= 3).")
flags.DEFINE_integer("min_item_interactions",
                     PrepareConfig.min_item_interactions,
                     "Drop items with fewer interactions.")

# Shared.
flags.DEFINE_integer("seed", 0, "Random seed; the same seed repeats a run.")
flags.DEFINE_string("out", None, "Output directory.")
flags.DEFINE_boolean("overwrite", False,
                     "Replace an existing output instead of refusing.")

DATA_FLAGS = ("dataset", "path", "columns", "data_dir", "manual_dir",
              "synthetic_users", "synthetic_items",
              "synthetic_interactions_per_user", "min_user_interactions",
              "min_item_interactions", "seed")


def source_config() -> SourceConfig:
  return SourceConfig(
      dataset=FLAGS.dataset, path=FLAGS.path, data_dir=FLAGS.data_dir,
      manual_dir=FLAGS.manual_dir, columns=FLAGS.columns,
      synthetic=SyntheticConfig(
          num_users=FLAGS.synthetic_users, num_items=FLAGS.synthetic_items,
          mean_interactions_per_user=FLAGS.synthetic_interactions_per_user,
          seed=FLAGS.seed))


def prepare_config() -> PrepareConfig:
  return PrepareConfig(min_user_interactions=FLAGS.min_user_interactions,
                       min_item_interactions=FLAGS.min_item_interactions)
