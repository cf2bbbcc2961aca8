"""The one Keras registration of tfdistill's layers, models and losses."""

import tf_keras

#: Class decorator: registers a layer, model or loss under the "tfdistill"
#: package, so that saved models and `get_config` round trips find it by
#: name ("tfdistill>ClassName").
register = tf_keras.saving.register_keras_serializable(package="tfdistill")
