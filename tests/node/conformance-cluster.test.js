// The conformance suite again, against a 2-node cluster: pusher-js clients on one node, the
// `pusher` SDK on the other (see conformance.test.js, CONFORMANCE_CLUSTER).

'use strict';

process.env.CONFORMANCE_CLUSTER = '1';
require('./conformance.test.js');
