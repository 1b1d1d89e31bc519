import "../frames.test.js";
import "../kinds.test.js";
import "../e2e.test.js";
import "../payments.test.js";
import "../franking.test.js";
