#!/usr/bin/env Rscript
# Golden values for analysis.province.provincial_estimate from R's survey package.
#
# Run from the project root:  Rscript r/make_province_fixture.R
# Needs R and the survey package (Debian: apt-get install r-base-core r-cran-survey r-cran-jsonlite).
# Writes tests/fixtures/province_r/microdata.csv (three small synthetic city samples, each a
# stratified cluster sample of its own) and province_r.json (the numbers pytest compares to).
# CI never runs this script.
#
# The provincial estimate treats the cities as strata: the pooled design has strata nested in
# cities (svydesign(ids = ~psu, strata = ~stratum, weights = ~w, nest = TRUE) with stratum ids
# unique across cities); the share per city is svyby(~y, ~city, svymean); the province is the
# contrast with the cities' population shares N_c / N (svycontrast), whose variance is
# sum (N_c / N)^2 var_c because cities share no stratum.

suppressMessages(library(survey))
library(jsonlite)

out_dir <- "tests/fixtures/province_r"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
set.seed(20250917)

cities <- data.frame(city = c("city_a", "city_b", "city_c"), n_strata = c(3, 4, 2),
                     rate = c(0.12, 0.17, 0.10), population = c(1200000, 3400000, 800000))
rows <- list()
for (i in seq_len(nrow(cities))) {
  for (h in seq_len(cities$n_strata[i])) {
    n_psu <- sample(2:4, 1)
    for (j in seq_len(n_psu)) {
      m <- sample(8:20, 1)
      psu_effect <- rnorm(1, 0, 0.5)
      p <- plogis(qlogis(cities$rate[i]) + psu_effect)
      rows[[length(rows) + 1]] <- data.frame(
        city = cities$city[i], stratum = sprintf("%s-s%d", cities$city[i], h),
        psu = sprintf("p%d", j), w = round(runif(m, 200, 900) * (1 + h / 3), 3),
        y = rbinom(m, 1, p))
    }
  }
}
d <- do.call(rbind, rows)
write.csv(d, file.path(out_dir, "microdata.csv"), row.names = FALSE)

des <- svydesign(ids = ~psu, strata = ~stratum, weights = ~w, nest = TRUE, data = d)
by_city <- svyby(~y, ~city, des, svymean, covmat = TRUE)
share <- cities$population / sum(cities$population)
names(share) <- cities$city
share <- share[as.character(by_city$city)]
prov <- svycontrast(by_city, share)

num <- function(x) as.numeric(unname(x))
out <- list(
  r_version = R.version.string, survey_version = as.character(packageVersion("survey")),
  population = as.list(setNames(cities$population, cities$city)),
  cities = lapply(seq_len(nrow(by_city)), function(k) list(
    city = as.character(by_city$city[k]), estimate = num(coef(by_city)[k]), se = num(SE(by_city)[k]))),
  province = list(estimate = num(coef(prov)), se = num(SE(prov)))
)
write_json(out, file.path(out_dir, "province_r.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote", file.path(out_dir, "province_r.json"), "\n")
