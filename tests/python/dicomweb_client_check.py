"""A third-party DICOMweb client (dicomweb-client, pydicom) against MedLedger.

Usage: dicomweb_client_check.py BASE_URL TOKEN FILE...
Stores the files with STOW-RS, finds them with QIDO-RS and reads them back with
WADO-RS (instances, metadata); prints one JSON object with what it saw.
"""
import json
import sys

import pydicom
from dicomweb_client.api import DICOMwebClient


def main():
    base, token, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    client = DICOMwebClient(url=f"{base}/dicomweb", headers={"Authorization": f"Bearer {token}"})
    datasets = [pydicom.dcmread(f) for f in files]
    stored = client.store_instances(datasets=datasets)
    study = datasets[0].StudyInstanceUID
    studies = client.search_for_studies(search_filters={"StudyInstanceUID": study})
    series = client.search_for_series(study_instance_uid=study)
    instances = client.search_for_instances(study_instance_uid=study)
    metadata = client.retrieve_study_metadata(study_instance_uid=study)
    first = datasets[0]
    retrieved = client.retrieve_instance(
        study_instance_uid=study,
        series_instance_uid=first.SeriesInstanceUID,
        sop_instance_uid=first.SOPInstanceUID,
    )
    from_metadata = pydicom.Dataset.from_json(metadata[0])
    print(json.dumps({
        "stored": len(stored.ReferencedSOPSequence),
        "studies": len(studies),
        "series": len(series),
        "instances": len(instances),
        "metadata": len(metadata),
        "metadata_patient_id": str(from_metadata.PatientID),
        "metadata_instance_number": int(from_metadata.InstanceNumber),
        "retrieved_sop": str(retrieved.SOPInstanceUID),
        "retrieved_pixels_equal": retrieved.PixelData == first.PixelData,
    }))


if __name__ == "__main__":
    main()
