# webrtcvad is installed from the `webrtcvad-wheels` distribution, whose metadata it reads for its
# version; the stock hook asks for a `webrtcvad` distribution that does not exist here.
from PyInstaller.utils.hooks import copy_metadata

datas = copy_metadata("webrtcvad-wheels")
