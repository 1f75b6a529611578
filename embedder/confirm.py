"""A second opinion on a weak HOG detection: dlib's CNN on a crop around it.

dlib's HOG scores a face by its SVM margin; faces that are turned a little
in the image plane, wear sunglasses or are partly shaded often score just
below 0, where noise and textures score too. The CNN (MMOD) tells these
apart well, but running it on a whole image costs seconds on a CPU. Run on
a small crop around one HOG box (the box scaled to ``face_px`` pixels, with
``margin`` box widths around it) it costs a fraction of that, so the
cascade can keep the faces HOG nearly missed without the false ones.
"""

from __future__ import annotations

import threading

import cv2
import dlib
import numpy as np

from embedder.dlib_models import CNN_DETECTOR, dlib_model_path

Box = tuple[int, int, int, int]


class CnnConfirmer:
    """Says whether the CNN sees a face where a HOG box is.

    Args:
        face_px: the crop is scaled so that the box is this many pixels wide
            (the CNN without upsampling finds faces of about 80 px and more).
        margin: the crop reaches this many box widths beyond the box's
            centre on each side (0.75: a crop 1.5 box widths wide).
        min_confidence: the CNN's detections scoring below are ignored.
    """

    def __init__(self, face_px: int = 80, margin: float = 0.75, min_confidence: float = 0.0):
        self._face_px = face_px
        self._margin = margin
        self._min_confidence = min_confidence
        self._cnn = dlib.cnn_face_detection_model_v1(str(dlib_model_path(CNN_DETECTOR)))
        # dlib's CNN keeps scratch buffers per object: one call at a time.
        self._lock = threading.Lock()

    def confirms(self, image: np.ndarray, box: Box) -> bool:
        """True when the CNN finds a face whose centre lies in ``box``
        (left, top, right, bottom; pixels of ``image``, RGB uint8) and whose
        width is within a factor 2 of the box's."""
        crop, origin, scale = self._crop(image, box)
        if crop.size == 0:
            return False
        with self._lock:
            found = self._cnn(crop, 0)
        width = box[2] - box[0]
        for det in found:
            if det.confidence < self._min_confidence:
                continue
            rect = det.rect
            cx = origin[0] + (rect.left() + rect.right() + 1) / 2 / scale
            cy = origin[1] + (rect.top() + rect.bottom() + 1) / 2 / scale
            ratio = (rect.right() + 1 - rect.left()) / scale / max(1, width)
            inside = box[0] <= cx <= box[2] and box[1] <= cy <= box[3]
            if inside and 0.5 <= ratio <= 2:
                return True
        return False

    def _crop(self, image: np.ndarray, box: Box) -> tuple[np.ndarray, tuple[int, int], float]:
        """The crop around ``box`` scaled by ``scale``, and its top-left
        corner (x, y) in ``image``."""
        left, top, right, bottom = box
        width = max(1, right - left)
        half = width * self._margin
        cx, cy = (left + right) / 2, (top + bottom) / 2
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1 = min(image.shape[1], int(cx + half))
        y1 = min(image.shape[0], int(cy + half))
        crop = image[y0:y1, x0:x1]
        scale = self._face_px / width
        if crop.size == 0:
            return crop, (x0, y0), scale
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        interpolation = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
        resized = cv2.resize(crop, size, interpolation=interpolation)
        return np.ascontiguousarray(resized), (x0, y0), scale
