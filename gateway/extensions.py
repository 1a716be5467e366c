"""Flask extensions created once and bound to an app in the factory."""

from flask_cors import CORS
from flask_sock import Sock

sock = Sock()
cors = CORS()
