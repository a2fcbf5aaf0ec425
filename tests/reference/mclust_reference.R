# Reference values from R's mclust for gmm_jax's conjugate prior and model selection.
#
# Run from the repository root (needs R with mclust and jsonlite, e.g. the
# Debian packages r-cran-mclust and r-cran-jsonlite):
#
#   python -m tests.reference.mclust_data           # writes iris.csv and wine.csv
#   Rscript tests/reference/mclust_reference.R    # writes faithful.csv and mclust_reference.json
#
# For each dataset it records, in scikit-learn's shapes and names
# (full = VVV, tied = EEE, diag = VVI, spherical = VII):
#   default_prior  mclust's defaultPrior(data, G, model) for G = 1..9 (and, for wine,
#                  on its first 10 rows, where n <= p);
#   bic            mclustBIC tables for G = 1..9, without and with priorControl()
#                  (mclust's sign: larger is better, 2 loglik - npar log n; null = NA);
#   mstep          one M-step with the default prior (mstep(), i.e. the Fortran ms*p
#                  routines) from the hard classification of mclust's hierarchical
#                  initialisation, together with those labels;
#   map_fit        a MAP fit (Mclust with priorControl(), then me() run on with
#                  tol = 0 until the parameters stop moving), and how much one more
#                  estep + mstep of mclust itself moves it.
# The tests (tests/test_prior.py) read the JSON; they never run R.

suppressPackageStartupMessages({
  library(mclust)
  library(jsonlite)
})

here <- "tests/reference"
models <- c(full = "VVV", tied = "EEE", diag = "VVI", spherical = "VII")
G_range <- 1:9
fit_G <- c(iris = 3, wine = 3, faithful = 3)

write.csv(faithful, file.path(here, "faithful.csv"), row.names = FALSE, quote = FALSE)

read_data <- function(name) as.matrix(read.csv(file.path(here, paste0(name, ".csv"))))

rows <- function(m) lapply(seq_len(nrow(m)), function(i) unname(m[i, ]))

# mclust parameters -> scikit-learn shapes: means (K, D), covariances per type.
sk_params <- function(params, type) {
  mu <- t(params$mean)
  v <- params$variance
  cov <- switch(type,
    full = lapply(seq_len(dim(v$sigma)[3]), function(k) rows(v$sigma[, , k])),
    tied = rows(v$Sigma),
    diag = rows(t(apply(v$sigma, 3, diag))),
    spherical = unname(v$sigmasq))
  if (type == "diag" && ncol(mu) == 1) cov <- rows(matrix(apply(v$sigma, 3, diag), ncol = 1))
  list(weights = unname(params$pro), means = rows(mu), covariances = cov)
}

flat <- function(params, type) {
  v <- params$variance
  cov <- switch(type, full = v$sigma, tied = v$Sigma, diag = apply(v$sigma, 3, diag), spherical = v$sigmasq)
  c(params$pro, params$mean, cov)
}

prior_json <- function(pp) {
  scale <- if (is.matrix(pp$scale)) rows(pp$scale) else unname(pp$scale)
  list(shrinkage = pp$shrinkage, mean = unname(pp$mean), dof = pp$dof, scale = scale)
}

bic_json <- function(B) {
  B <- unclass(B)
  out <- list()
  for (type in names(models)) {
    col <- unname(B[, models[[type]]])
    out[[type]] <- lapply(col, function(b) if (is.na(b)) NULL else b)
  }
  out
}

result <- list(mclust_version = as.character(packageVersion("mclust")), models = as.list(models), datasets = list())

for (name in c("iris", "wine", "faithful")) {
  X <- read_data(name)
  n <- nrow(X)
  G <- fit_G[[name]]
  entry <- list(n_samples = n, n_features = ncol(X), default_prior = list(), mstep = list(), map_fit = list())

  for (type in names(models)) {
    m <- models[[type]]
    entry$default_prior[[type]] <- lapply(G_range, function(g) prior_json(defaultPrior(X, g, m)))
  }
  # n <= p: mclust's full/tied default scale is then the diagonal of var(X).
  if (name == "wine") {
    entry$default_prior_first_10_rows <- list()
    for (type in names(models)) {
      entry$default_prior_first_10_rows[[type]] <- lapply(G_range, function(g) prior_json(defaultPrior(X[1:10, ], g, models[[type]])))
    }
  }

  cat(name, ": BIC tables\n")
  entry$bic <- list(
    no_prior = bic_json(mclustBIC(X, G = G_range, modelNames = unname(models))),
    prior = bic_json(mclustBIC(X, G = G_range, modelNames = unname(models), prior = priorControl())))

  hcp <- hc(X, modelName = mclust.options("hcModelName"), use = mclust.options("hcUse"))
  labels <- as.vector(hclass(hcp, G))
  for (type in names(models)) {
    m <- models[[type]]
    cat(name, type, ": mstep and MAP fit\n")
    ms <- mstep(X, modelName = m, z = unmap(labels), prior = priorControl())
    entry$mstep[[type]] <- c(list(n_components = G, labels = labels - 1L), sk_params(ms$parameters, type))

    # Run on until the parameters stop moving. Where that empties a component
    # (a MAP fixed point on the boundary), use the next number of components.
    for (G_fit in c(G, 2, 4)) {
      start <- Mclust(X, G = G_fit, modelNames = m, prior = priorControl(), verbose = FALSE)
      fit <- me(X, modelName = m, z = start$z, prior = priorControl(),
                control = emControl(tol = c(0, 0), itmax = c(20000L, 20000L)))
      if (attr(fit, "returnCode") == 0) break
    }
    stopifnot(attr(fit, "returnCode") == 0)
    again <- mstep(X, modelName = m, z = estep(X, modelName = m, parameters = fit$parameters)$z,
                   prior = priorControl())
    change <- max(abs(flat(again$parameters, type) - flat(fit$parameters, type)))
    entry$map_fit[[type]] <- c(list(n_components = G_fit, loglik = fit$loglik, iterations = attr(fit, "info")[["iterations"]],
                                    self_step_change = change), sk_params(fit$parameters, type))
  }
  result$datasets[[name]] <- entry
}

writeLines(toJSON(result, auto_unbox = TRUE, digits = NA, null = "null", pretty = FALSE),
           file.path(here, "mclust_reference.json"))
cat("wrote", file.path(here, "mclust_reference.json"), "\n")
