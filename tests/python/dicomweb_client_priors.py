"""A third-party DICOMweb client (dicomweb-client, pydicom) given the prior root of a report.

Usage: dicomweb_client_priors.py ROOT_URL TOKEN PUBLIC_URL
Finds the report's priors with QIDO-RS, opens the first one as a viewer would (series,
instances, metadata, the instance, its first frame, a rendered frame, the pixel data by its
BulkDataURI), using only the root and the URLs its answers give (their PUBLIC_URL, the
server's configured public address, replaced by the address the test server listens on);
prints what it saw as JSON.
"""
import json
import sys

import pydicom
from dicomweb_client.api import DICOMwebClient


def main():
    root, token, public = sys.argv[1], sys.argv[2], sys.argv[3]
    listening = root[: root.index("/dicomweb/")]
    client = DICOMwebClient(url=root, headers={"Authorization": f"Bearer {token}"})
    studies = client.search_for_studies()
    study = pydicom.Dataset.from_json(studies[0])
    uid = str(study.StudyInstanceUID)
    series = client.search_for_series(study_instance_uid=uid)
    instances = client.search_for_instances(study_instance_uid=uid)
    first = pydicom.Dataset.from_json(instances[0])
    series_uid, sop_uid = str(first.SeriesInstanceUID), str(first.SOPInstanceUID)
    metadata = client.retrieve_study_metadata(study_instance_uid=uid)
    pixel_uri = metadata[0]["7FE00010"]["BulkDataURI"]
    instance = client.retrieve_instance(
        study_instance_uid=uid, series_instance_uid=series_uid, sop_instance_uid=sop_uid
    )
    frames = client.retrieve_instance_frames(
        study_instance_uid=uid,
        series_instance_uid=series_uid,
        sop_instance_uid=sop_uid,
        frame_numbers=[1],
    )
    rendered = client.retrieve_instance_rendered(
        study_instance_uid=uid,
        series_instance_uid=series_uid,
        sop_instance_uid=sop_uid,
        media_types=("image/png",),
    )
    pixels = client.retrieve_bulkdata(pixel_uri.replace(public, listening, 1))
    print(json.dumps({
        "studies": [str(pydicom.Dataset.from_json(s).StudyInstanceUID) for s in studies],
        "retrieve_url": str(study.RetrieveURL),
        "series": len(series),
        "instances": len(instances),
        "metadata": len(metadata),
        "metadata_patient_id": str(pydicom.Dataset.from_json(metadata[0]).PatientID),
        "pixel_uri": pixel_uri,
        "retrieved_sop": str(instance.SOPInstanceUID),
        "frame_bytes": len(frames[0]),
        "rendered_png": rendered[:8] == b"\x89PNG\r\n\x1a\n",
        "bulk_pixels_equal": pixels[0] == instance.PixelData,
    }))


if __name__ == "__main__":
    main()
