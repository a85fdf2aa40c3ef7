/** Deployment statuses of a deploy still running (the rest are final). */
export const IN_FLIGHT_STATUSES = ['queued', 'building', 'deploying'];
