/*
 * apim — `source = azure-apim` (docs/apim-sync.md): the agent follows an
 * Azure API Management service through ARM (arm.h).
 *
 *   int code = apim_once(a);                 the --once exit code
 *
 * Status: this first part authenticates (client credentials) and reads the
 * gateway's assigned APIs (gateways/{apim_gateway}/apis, every page), logs how
 * many and how many ARM reads that took, and stops there: converting and
 * installing are not built yet (docs/apim-sync.md, "Status"), so nothing is
 * ever installed and the exit code is 2 after a good read (the agent cannot do
 * its job yet), 1 when Azure failed (the read a full sync would also fail on).
 */
#ifndef HOSTGATE_APIM_H
#define HOSTGATE_APIM_H

#include "sync-agent/agent.h"

int apim_once(struct agent *a);

#endif
