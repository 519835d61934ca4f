/* Inverse kinematics from C with the Jacobian symdiff exported (examples/robot_arm.py --export DIR).
 *
 *   python examples/robot_arm.py --export build
 *   cc examples/c_jacobian/ik.c -Ibuild -Lbuild -larm -Wl,-rpath,build -lm -o ik && ./ik 1.2 0.9
 *
 * Damped Gauss-Newton: q <- q - J^T (J J^T + lambda I)^-1 (p(q) - target); J J^T is 2x2, inverted in
 * closed form. Each function gets its own workspace from the work-size query. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "arm.h"

int main(int argc, char **argv) {
    double target[2] = {argc > 2 ? atof(argv[1]) : 1.2, argc > 2 ? atof(argv[2]) : 0.9};
    double q[3] = {0.3, 0.3, 0.3}, p[2], J[6];
    void *ws_p = arm_fk_workspace_alloc(), *ws_j = arm_fk_jac_workspace_alloc();
    int it;
    for (it = 0; it < 50; it++) {
        arm_fk_run(q, p, ws_p, NULL);
        double e0 = p[0] - target[0], e1 = p[1] - target[1];
        if (sqrt(e0 * e0 + e1 * e1) < 1e-10) break;
        arm_fk_jac_run(q, J, ws_j, NULL);  /* J is 2x3, row-major */
        double a = 1e-4, b = 0, d = 1e-4;  /* A = J J^T + lambda I */
        for (int k = 0; k < 3; k++) { a += J[k] * J[k]; b += J[k] * J[3 + k]; d += J[3 + k] * J[3 + k]; }
        double det = a * d - b * b, y0 = (d * e0 - b * e1) / det, y1 = (a * e1 - b * e0) / det;
        for (int k = 0; k < 3; k++) q[k] -= J[k] * y0 + J[3 + k] * y1;
    }
    arm_fk_run(q, p, ws_p, NULL);
    printf("steps %d q %.9f %.9f %.9f p %.9f %.9f\n", it, q[0], q[1], q[2], p[0], p[1]);
    arm_fk_workspace_free(ws_p);
    arm_fk_jac_workspace_free(ws_j);
    return 0;
}
