#!/usr/bin/env Rscript
# Golden values for analysis.weighting / analysis.estimate from R's survey package.
#
# Run from the project root:  Rscript r/make_survey_fixtures.R
# Needs R and the survey package (Debian: apt-get install r-base-core r-cran-survey).
# Writes tests/fixtures/survey_r/*.csv (the data Python reads) and survey_r.json
# (the numbers pytest compares to, 1e-8 relative). CI never runs this script.
#
# Conventions the Python side matches:
# * ultimate-cluster, with-replacement variance: svydesign(ids = ~psu, strata = ~stratum,
#   weights = ~w, nest = TRUE), no fpc;
# * domains as svyby does them: design[domain, ] (keeps the full design's PSU counts);
# * shares: svyciprop(method = "logit") with df = degf(domain design) (stored as computed by
#   method = "xlogit", the same interval in closed form, and by "logit" itself);
# * means: svymean(deff = TRUE) (deff against SRS without replacement), CI with
#   confint(..., df = degf(domain design));
# * raking: rake() iterated to a tight tolerance; estimates on the raked design
#   include rake()'s variance adjustment (svyrecvar's 10 back-fitting sweeps).

suppressMessages(library(survey))
library(jsonlite)

out_dir <- "tests/fixtures/survey_r"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
data(api)

num <- function(x) as.numeric(unname(x))

# One estimate (mean or share) for the whole design or a domain of it.
one_stat <- function(des, var, share) {
  f <- as.formula(paste0("~", var))
  m <- svymean(f, des, deff = TRUE)
  df <- degf(des)
  res <- list(n = sum(weights(des, "sampling") != 0),
              estimate = num(coef(m)), se = num(SE(m)), deff = num(deff(m)), df = df)
  if (share && res$estimate > 0 && res$estimate < 1) {
    # "xlogit" is the same logit-scale Wald interval as "logit" computed in closed form;
    # "logit" gets it from an IRLS fit (glm tolerance 1e-8), so it is kept for a 1e-6 check.
    ci <- attr(svyciprop(f, des, method = "xlogit", df = df), "ci")
    ci_glm <- attr(svyciprop(f, des, method = "logit"), "ci")
    res$ci_low_glm <- num(ci_glm[1])
    res$ci_high_glm <- num(ci_glm[2])
  } else if (share) {
    ci <- c(NA, NA)  # logit interval undefined at 0 or 1
  } else {
    ci <- confint(m, df = df)
  }
  res$ci_low <- num(ci[1])
  res$ci_high <- num(ci[2])
  res
}

stats_for <- function(des, vars, shares, by = NULL) {
  out <- list()
  for (v in vars) {
    share <- v %in% shares
    if (is.null(by)) {
      out[[length(out) + 1]] <- c(list(variable = v, by = NULL, level = "all"),
                                  one_stat(des, v, share))
    } else {
      levs <- sort(unique(as.character(des$variables[[by]])))
      for (lev in levs) {
        sub <- des[as.character(des$variables[[by]]) == lev, ]  # what svyby does
        out[[length(out) + 1]] <- c(list(variable = v, by = by, level = lev),
                                    one_stat(sub, v, share))
      }
    }
  }
  out
}

all_stats <- function(des, vars, shares, bys) {
  res <- stats_for(des, vars, shares)
  for (b in bys) res <- c(res, stats_for(des, vars, shares, b))
  res
}

cases <- list()
add_case <- function(name, data, ids, strata, weights, lonely, vars, shares, bys,
                     calibration = NULL, des) {
  old <- options(survey.lonely.psu = lonely)
  on.exit(options(old))
  cases[[length(cases) + 1]] <<- list(
    name = name, data = data, ids = ids, strata = strata, weights = weights,
    lonely_psu = lonely, calibration = calibration,
    stats = all_stats(des, vars, shares, bys))
}

# ---- api data, exported so Python reads the same rows --------------------------------
prep <- function(d) {
  d$schwide <- as.numeric(d$sch.wide == "Yes")
  d$awards_yes <- as.numeric(d$awards == "Yes")
  d$stype <- as.character(d$stype)
  d$sch_wide <- as.character(d$sch.wide)
  d$awards <- as.character(d$awards)
  d$row <- seq_len(nrow(d)) - 1
  d
}
apistrat2 <- prep(apistrat)
apiclus1b <- prep(apiclus1)
apiclus2b <- prep(apiclus2)
# A made-up stratification of apiclus2 with one single-PSU stratum (district 15 alone).
apiclus2b$st <- ifelse(apiclus2b$dnum == 15, "S1", ifelse(apiclus2b$dnum < 400, "S2", "S3"))
cols <- c("row", "dnum", "snum", "stype", "pw", "api00", "api99", "enroll",
          "schwide", "sch_wide", "awards", "awards_yes")
write.csv(apistrat2[, cols], file.path(out_dir, "apistrat.csv"), row.names = FALSE)
write.csv(apiclus1b[, cols], file.path(out_dir, "apiclus1.csv"), row.names = FALSE)
write.csv(apiclus2b[, c(cols, "st")], file.path(out_dir, "apiclus2.csv"), row.names = FALSE)

vars <- c("api00", "enroll", "schwide")
shares <- c("schwide")

dstrat <- svydesign(ids = ~1, strata = ~stype, weights = ~pw, data = apistrat2)
add_case("apistrat", "apistrat.csv", NULL, "stype", "pw", "adjust", vars, shares,
         c("awards", "sch_wide"), des = dstrat)

dclus1 <- svydesign(ids = ~dnum, weights = ~pw, data = apiclus1b)
add_case("apiclus1", "apiclus1.csv", "dnum", NULL, "pw", "adjust", vars, shares,
         c("stype", "awards"), des = dclus1)

dclus2 <- svydesign(ids = ~dnum, weights = ~pw, data = apiclus2b)
add_case("apiclus2", "apiclus2.csv", "dnum", NULL, "pw", "adjust", c("api00", "schwide"),
         shares, c("stype"), des = dclus2)

for (lonely in c("certainty", "adjust", "average", "remove")) {
  options(survey.lonely.psu = lonely)
  dl <- svydesign(ids = ~dnum, strata = ~st, weights = ~pw, data = apiclus2b, nest = TRUE)
  add_case(paste0("apiclus2_lonely_", lonely), "apiclus2.csv", "dnum", "st", "pw", lonely,
           c("api00", "schwide"), shares, c("stype"), des = dl)
}
options(survey.lonely.psu = "fail")

# ---- raking and post-stratification on apiclus1 --------------------------------------
pop_types <- data.frame(stype = c("E", "H", "M"), Freq = c(4421, 755, 1018))
pop_schwide <- data.frame(sch_wide = c("No", "Yes"), Freq = c(1072, 5122))
# epsilon < 1 is relative to the weight total in rake(): 1e-14 is as tight as doubles allow
tight <- list(maxit = 1000, epsilon = 1e-14, verbose = FALSE)
rclus1 <- rake(dclus1, list(~stype, ~sch_wide), list(pop_types, pop_schwide), control = tight)
margins_api <- list(
  list(columns = list("stype"), levels = as.list(pop_types$stype), totals = pop_types$Freq),
  list(columns = list("sch_wide"), levels = as.list(pop_schwide$sch_wide),
       totals = pop_schwide$Freq))
add_case("apiclus1_raked", "apiclus1.csv", "dnum", NULL, "pw", "adjust", vars, shares,
         c("stype", "awards"), calibration = list(kind = "raking", margins = margins_api),
         des = rclus1)
raked_weights_api <- num(weights(rclus1))
# Same raked weights used as plain design weights (no calibration term in the variance).
apiclus1b$wraked <- raked_weights_api
dplain <- svydesign(ids = ~dnum, weights = ~wraked, data = apiclus1b)
add_case("apiclus1_raked_plain", "apiclus1.csv", "dnum", NULL, "wraked", "adjust", vars, shares,
         c("stype", "awards"), des = dplain)

psclus1 <- postStratify(dclus1, ~stype, pop_types)
add_case("apiclus1_poststrat", "apiclus1.csv", "dnum", NULL, "pw", "adjust", vars, shares,
         c("awards"), calibration = list(kind = "poststratify", margins = margins_api[1]),
         des = psclus1)
ps_weights_api <- num(weights(psclus1))

# ---- one demo year of the project's own (synthetic) survey ------------------------------
demo_path <- file.path(out_dir, "demo_survey.csv")
demo <- NULL
if (file.exists(demo_path)) {
  demo <- read.csv(demo_path, colClasses = c(division_code = "character", stratum = "character",
                                             psu = "character"), encoding = "UTF-8")
  mar <- read.csv(file.path(out_dir, "demo_margins.csv"),
                  colClasses = c(division_code = "character"), encoding = "UTF-8")
  demo$literate01 <- as.numeric(demo$literate == "True" | demo$literate == "TRUE")
  demo$du <- paste(demo$division_code, demo$urban_rural, sep = "|")
  demo$sa <- paste(demo$sex, demo$age_group, sep = "|")
  mdu <- mar[mar$margin == "division_urban", ]
  msa <- mar[mar$margin == "sex_age", ]
  med <- mar[mar$margin == "education", ]
  pop_du <- data.frame(du = paste(mdu$division_code, mdu$urban_rural, sep = "|"),
                       Freq = mdu$population)
  pop_sa <- data.frame(sa = paste(msa$sex, msa$age_group, sep = "|"), Freq = msa$population)
  pop_ed <- data.frame(education = med$education, Freq = med$population)
  ddemo <- svydesign(ids = ~psu, strata = ~stratum, weights = ~design_weight, data = demo,
                     nest = TRUE)
  rdemo <- rake(ddemo, list(~du, ~sa, ~education), list(pop_du, pop_sa, pop_ed),
                control = tight)
  dvars <- c("literate01", "score_total")
  demo$elderly <- ifelse(demo$age >= 60 & demo$age <= 69, "yes", "no")  # a key group
  dbys <- c("division_code", "urban_rural", "sex", "age_group", "education", "occupation",
            "elderly")
  add_case("demo_design", "demo_survey.csv", "psu", "stratum", "design_weight", "adjust",
           dvars, "literate01", dbys, des = ddemo)
  add_case("demo_raked", "demo_survey.csv", "psu", "stratum", "design_weight", "adjust",
           dvars, "literate01", dbys,
           calibration = list(kind = "raking", margins_from = "demo_margins.csv"), des = rdemo)
  demo_raked_weights <- num(weights(rdemo))
  # A single-PSU stratum on the demo year: the PSUs of the first stratum merged into one.
  demo1 <- demo
  first <- sort(unique(demo1$stratum))[1]
  demo1$psu[demo1$stratum == first] <- "merged"
  for (lonely in c("adjust", "average", "certainty")) {
    options(survey.lonely.psu = lonely)
    d1 <- svydesign(ids = ~psu, strata = ~stratum, weights = ~design_weight, data = demo1,
                    nest = TRUE)
    add_case(paste0("demo_lonely_", lonely), "demo_survey.csv", "psu", "stratum",
             "design_weight", lonely, dvars, "literate01", c("division_code", "urban_rural"),
             calibration = list(merge_first_stratum_psus = TRUE), des = d1)
  }
  options(survey.lonely.psu = "fail")
}

out <- list(
  generated_by = "r/make_survey_fixtures.R",
  r_version = R.version.string,
  survey_version = as.character(packageVersion("survey")),
  cases = cases,
  raked_weights = list(apiclus1 = raked_weights_api,
                       apiclus1_poststrat = ps_weights_api,
                       demo = if (is.null(demo)) NULL else demo_raked_weights))
write_json(out, file.path(out_dir, "survey_r.json"), auto_unbox = TRUE, digits = NA,
           pretty = TRUE, null = "null")
cat("wrote", file.path(out_dir, "survey_r.json"), "with", length(cases), "cases\n")
