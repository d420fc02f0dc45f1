<?php
/**
 * Hourly payment figures from the shop's orders table, sent to `POST payment-health`.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * The PHP side of the agent's `report-payments` (`molam_agent/payment_health.py`,
 * `docs/agent.md`): same query contract, same body, same idempotency keys, same hours.
 *
 * The query (setting `payment_health_query`, then the filter `molam_form_payment_health_query`;
 * default: WooCommerce's HPOS tables) returns one row per payment attempt in
 * `[:since, :until)` (UTC, `YYYY-MM-DD HH:MM:SS`, bound with `$wpdb->prepare()`; `{prefix}`
 * is the site's table prefix): `created_at` (UTC), `outcome` (`succeeded`, a failure class,
 * or `pending`/NULL = undecided, left out; anything else counts as `other`) and `latency_ms`.
 *
 * Each run reads the last `payment_health_hours` complete UTC hours (default 3: an hour's
 * latest figures replace the earlier ones), and back to the hour after the last one read when
 * WP-cron was idle longer than that (a quiet shop), within the control plane's 7 days. Reports
 * go through the outbox with a key derived from the hour and its figures, so an hour whose
 * figures did not change is never sent again and a control plane that is down only delays
 * them. The current hour is never sent.
 */
class Molam_Form_Payment_Health {

	const LAST_HOUR       = 'molam_form_payment_health_last_hour';
	const PATH            = 'payment-health';
	const FAILURE_CLASSES = array( 'declined', 'fraud', 'gateway_error', 'timeout', 'validation', 'other' );
	// The control plane refuses hours older than 7 days; one hour of margin for the clock.
	const MAX_HOURS = 167;

	/**
	 * The query for WooCommerce's HPOS tables (`docs/agent.md`, Payment health).
	 *
	 * @return string
	 */
	public static function default_query() {
		return "SELECT o.date_created_gmt AS created_at,
       CASE
         WHEN o.status IN ('wc-processing', 'wc-completed', 'wc-refunded') THEN 'succeeded'
         WHEN o.status = 'wc-failed' THEN COALESCE(fc.meta_value, 'declined')
         ELSE 'pending'
       END AS outcome,
       lat.meta_value AS latency_ms
FROM {prefix}wc_orders o
LEFT JOIN {prefix}wc_orders_meta fc ON fc.order_id = o.id AND fc.meta_key = '_molam_failure_class'
LEFT JOIN {prefix}wc_orders_meta lat ON lat.order_id = o.id AND lat.meta_key = '_molam_payment_latency_ms'
WHERE o.type = 'shop_order' AND o.payment_method = 'molam'
  AND o.date_created_gmt >= :since AND o.date_created_gmt < :until";
	}

	/**
	 * The configured query.
	 *
	 * @return string
	 */
	public static function query() {
		$stored = Molam_Form_Settings::get( 'payment_health_query' );
		$query  = is_string( $stored ) && '' !== trim( $stored ) ? $stored : self::default_query();
		return (string) apply_filters( 'molam_form_payment_health_query', $query );
	}

	/**
	 * `[since, until)` of this run, as Unix times of hour starts.
	 *
	 * @param int $now Unix time.
	 * @return array{0:int, 1:int}
	 */
	public static function window( $now ) {
		$until = intdiv( $now, 3600 ) * 3600;
		$hours = max( 1, (int) ( Molam_Form_Settings::get( 'payment_health_hours' ) ?? 3 ) );
		$since = $until - $hours * 3600;
		$last  = get_option( self::LAST_HOUR );
		if ( is_numeric( $last ) && (int) $last + 3600 < $since ) {
			$since = (int) $last + 3600;
		}
		return array( max( $since, $until - self::MAX_HOURS * 3600 ), $until );
	}

	/**
	 * Run the query on `[since, until)` and aggregate per UTC hour.
	 *
	 * @param int $since Unix time.
	 * @param int $until Unix time.
	 * @return array List of hours (agent's shape), or a string: why the query failed.
	 */
	public static function read_hours( $since, $until ) {
		global $wpdb;
		$params = array();
		$sql    = preg_replace_callback(
			'/:(since|until)\b/',
			function ( $m ) use ( &$params, $since, $until ) {
				$params[] = gmdate( 'Y-m-d H:i:s', 'since' === $m[1] ? $since : $until );
				return '%s';
			},
			str_replace( array( '%', '{prefix}' ), array( '%%', $wpdb->prefix ), self::query() )
		);
		if ( ! $params ) {
			return 'payment_health_query must use :since and :until to bound the hours it reads';
		}
		$suppress = $wpdb->suppress_errors( true );
		$rows     = $wpdb->get_results( $wpdb->prepare( $sql, $params ), ARRAY_N ); // phpcs:ignore WordPress.DB
		$error    = $wpdb->last_error;
		$wpdb->suppress_errors( $suppress );
		if ( '' !== $error || ! is_array( $rows ) ) {
			return 'payment_health_query failed: ' . ( '' !== $error ? $error : 'no result' );
		}
		return self::aggregate( $rows );
	}

	/**
	 * Per UTC hour: attempted, succeeded, failed by class, latency count/p50/p95.
	 *
	 * @param array $rows Rows: created_at, outcome, latency_ms.
	 * @return array|string
	 */
	public static function aggregate( $rows ) {
		$hours = array();
		foreach ( $rows as $row ) {
			if ( count( $row ) < 3 ) {
				return 'payment_health_query must return created_at, outcome, latency_ms';
			}
			list( $created, $outcome, $latency ) = array_values( $row );
			$outcome = null === $outcome ? '' : strtolower( trim( (string) $outcome ) );
			if ( '' === $outcome || 'pending' === $outcome ) {
				continue;
			}
			if ( 'succeeded' !== $outcome && ! in_array( $outcome, self::FAILURE_CLASSES, true ) ) {
				$outcome = 'other';
			}
			$text = rtrim( str_replace( 'T', ' ', trim( (string) $created ) ), 'Z' );
			// A date first, as the agent's fromisoformat(): PHP would read NULL or '' as "now"
			// and words such as "yesterday" as times, and count the payment in a wrong hour.
			$at = null;
			if ( preg_match( '/^\d{4}-\d{2}-\d{2}(?:$|[ +-])/', $text ) ) {
				try {
					$at     = ( new DateTimeImmutable( $text, new DateTimeZone( 'UTC' ) ) )->getTimestamp();
					$errors = DateTimeImmutable::getLastErrors();
					if ( $errors && $errors['warning_count'] ) {
						$at = null; // February 30th: PHP rolls it over to March, the agent refuses it.
					}
				} catch ( Exception $e ) {
					$at = null;
				}
			}
			if ( null === $at ) {
				return 'payment_health_query: created_at must be a date-time, got ' . wp_json_encode( $created );
			}
			$hour = intdiv( $at, 3600 ) * 3600;
			if ( ! isset( $hours[ $hour ] ) ) {
				$hours[ $hour ] = array( 'attempted' => 0, 'succeeded' => 0, 'failed' => array(), 'latencies' => array() );
			}
			++$hours[ $hour ]['attempted'];
			if ( 'succeeded' === $outcome ) {
				++$hours[ $hour ]['succeeded'];
			} else {
				$hours[ $hour ]['failed'][ $outcome ] = ( $hours[ $hour ]['failed'][ $outcome ] ?? 0 ) + 1;
			}
			if ( null !== $latency && is_numeric( $latency ) && (float) $latency >= 0 ) {
				$hours[ $hour ]['latencies'][] = (float) $latency;
			}
		}
		ksort( $hours );
		$out = array();
		foreach ( $hours as $hour => $bucket ) {
			$lat = $bucket['latencies'];
			sort( $lat );
			ksort( $bucket['failed'] );
			$out[] = array(
				'hour'             => gmdate( 'Y-m-d\TH:00:00\Z', $hour ),
				'attempted'        => $bucket['attempted'],
				'succeeded'        => $bucket['succeeded'],
				'failed_by_reason' => (object) $bucket['failed'],
				'latency_ms'       => $lat
					? array( 'count' => count( $lat ), 'p50' => self::nearest_rank( $lat, 0.50 ), 'p95' => self::nearest_rank( $lat, 0.95 ) )
					: array( 'count' => 0 ),
			);
		}
		return $out;
	}

	/**
	 * The q-quantile of sorted values by nearest rank.
	 *
	 * @param float[] $ordered Sorted values (not empty).
	 * @param float   $q       Quantile.
	 * @return float
	 */
	public static function nearest_rank( $ordered, $q ) {
		$rank = max( 1, (int) ceil( $q * count( $ordered ) ) );
		return (float) $ordered[ $rank - 1 ];
	}

	/**
	 * `json.dumps(value, sort_keys=True)` as Python writes it, so the keys are the agent's.
	 *
	 * @param mixed $value Body (objects and arrays are JSON objects; no lists in a body).
	 * @return string
	 */
	public static function canonical_json( $value ) {
		if ( is_object( $value ) || is_array( $value ) ) {
			$value = (array) $value;
			ksort( $value, SORT_STRING );
			$parts = array();
			foreach ( $value as $k => $v ) {
				$parts[] = self::canonical_json( (string) $k ) . ': ' . self::canonical_json( $v );
			}
			return '{' . implode( ', ', $parts ) . '}';
		}
		if ( is_float( $value ) ) {
			return json_encode( $value, JSON_PRESERVE_ZERO_FRACTION ); // phpcs:ignore WordPress.WP.AlternativeFunctions
		}
		return json_encode( $value, JSON_UNESCAPED_SLASHES ); // phpcs:ignore WordPress.WP.AlternativeFunctions
	}

	/**
	 * Same hour and same figures → same key: a re-run sends nothing new.
	 *
	 * @param array $body Body.
	 * @return string
	 */
	public static function idempotency_key( $body ) {
		return 'payment-health-' . substr( hash( 'sha256', self::canonical_json( $body ) ), 0, 32 );
	}

	/**
	 * WP-cron: report once a new complete hour exists (the cron runs every ten minutes),
	 * under the run lock, so no upgrade swaps the plugin (its version) meanwhile. Never throws:
	 * a failure (a work folder that cannot be created, a database error) is the run's result.
	 *
	 * @param int|null $now Unix time.
	 * @return array|null The run's result, or null when no new hour is complete or another
	 *                    run holds the lock (the next cron run reports).
	 */
	public static function maybe_report( $now = null ) {
		$now  = $now ?? time();
		$last = get_option( self::LAST_HOUR );
		if ( is_numeric( $last ) && (int) $last >= intdiv( $now, 3600 ) * 3600 - 3600 ) {
			return null;
		}
		try {
			$result = Molam_Form_Store::with_lock( fn() => self::report( $now ) );
		} catch ( Throwable $e ) {
			$result = array(
				'status' => 'failed',
				'error'  => $e->getMessage(),
			);
		}
		if ( null === $result ) {
			return null;
		}
		update_option( 'molam_form_payment_health_last_run', array_merge( $result, array( 'at' => $now ) ), false );
		return $result;
	}

	/**
	 * Read the hours of this run, queue one report per hour, remember the last hour read,
	 * and send what the outbox holds. Never throws.
	 *
	 * @param int|null $now Unix time.
	 * @return array{status:string, reason?:string, error?:string, hours?:string[], outbox?:array}
	 */
	public static function report( $now = null ) {
		list( $since, $until ) = self::window( $now ?? time() );
		$version               = Molam_Form_Upgrade::installed_version();
		if ( ! $version ) {
			return array( 'status' => 'failed', 'error' => 'the managed plugin has no readable Version header' );
		}
		$hours = self::read_hours( $since, $until );
		if ( is_string( $hours ) ) {
			return array( 'status' => 'failed', 'error' => $hours );
		}
		foreach ( $hours as $hour ) {
			$body = array_merge(
				array(
					'merchant_id'       => (string) Molam_Form_Settings::get( 'merchant_id' ),
					'plugin_name'       => (string) Molam_Form_Settings::get( 'plugin_name' ),
					'installed_version' => (string) $version,
				),
				$hour
			);
			Molam_Form_Outbox::enqueue( 'POST', self::PATH, $body, self::idempotency_key( $body ) );
		}
		// Queued (durable) before it is remembered: a crash in between re-reads the same hours.
		update_option( self::LAST_HOUR, $until - 3600, false );
		return array(
			'status' => 'success',
			'reason' => count( $hours ) . " hour(s) of payment figures queued for $version",
			'hours'  => array_column( $hours, 'hour' ),
			'outbox' => Molam_Form_Outbox::flush(),
		);
	}
}
