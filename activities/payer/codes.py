"""Da Vinci PAS (STU 2.2) as Followthrough uses it: extension URLs, X12 code systems, the topic.

Checked against the IG's FSH sources and its examples (HL7/davinci-pas).
"""

from __future__ import annotations

PAS = "http://hl7.org/fhir/us/davinci-pas"
SD = f"{PAS}/StructureDefinition"
TOPIC = f"{PAS}/SubscriptionTopic/PASSubscriptionTopic"
TEMP_CODES = f"{PAS}/CodeSystem/PASTempCodes"

# Claim
CERTIFICATION_TYPE = f"{SD}/extension-certificationType"  # UM02, X12 1322: I initial, 3 cancel
REQUEST_TYPE = f"{SD}/extension-serviceItemRequestType"  # X12 1525: HS health services review
LEVEL_OF_SERVICE = f"{SD}/extension-levelOfServiceCode"  # UM06, X12 1338: U urgent
REQUESTED_SERVICE = f"{SD}/extension-requestedService"  # the order the item is for
DOCUMENT_INFORMATION = f"{SD}/extension-documentInformation"  # on supportingInfo
TRANSMISSION_IDENTIFIERS = f"{SD}/extension-TransmissionIdentifiers"  # GS/ISA sender, receiver
INFO_CHANGED = f"{SD}/extension-infoChanged"
INFO_CANCELLED = f"{SD}/modifierextension-infoCancelled"

# ClaimResponse
REVIEW_ACTION = f"{SD}/extension-reviewAction"
REVIEW_ACTION_CODE = f"{SD}/extension-reviewActionCode"
ITEM_PREAUTH_PERIOD = f"{SD}/extension-itemPreAuthPeriod"
ADMINISTRATION_REFERENCE = f"{SD}/extension-administrationReferenceNumber"

# Code systems
X12_306 = "https://codesystem.x12.org/005010/306"  # HCR01 review action
X12_886 = "https://codesystem.x12.org/external/886"  # HCR03 review decision reason
X12_1322 = "https://codesystem.x12.org/005010/1322"
X12_1338 = "https://codesystem.x12.org/005010/1338"
X12_1365 = "https://codesystem.x12.org/005010/1365"  # service type (Claim.item.category)
X12_1525 = "https://codesystem.x12.org/005010/1525"
X12_755 = "https://codesystem.x12.org/005010/755"  # PWK01 attachment report type
X12_756 = "https://codesystem.x12.org/005010/756"  # PWK02 transmission method
PLACE_OF_SERVICE = (
    "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
)
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
PROCESS_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
RELATED_CLAIM = "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship"

# The R5 Subscriptions Backport on R4
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
FILTER_CRITERIA = f"{BACKPORT}/backport-filter-criteria"
