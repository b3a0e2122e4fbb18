"""Physical constants and unit conversions shared by every stage (CODATA 2018; no dependencies)."""

K_B_EV = 8.617333262e-5  # Boltzmann constant, eV/K
K_B_J = 1.380649e-23  # Boltzmann constant, J/K
ELEMENTARY_CHARGE_C = 1.602176634e-19
EV_A3_TO_GPA = 160.21766208  # 1 eV/Å³ in GPa
AMU_A3_TO_G_CM3 = 1.66053906660  # 1 amu/Å³ in g/cm³
A2_PER_FS_TO_CM2_PER_S = 0.1  # 1 Å²/fs in cm²/s
