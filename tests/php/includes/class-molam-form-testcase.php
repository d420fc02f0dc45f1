<?php
/**
 * Shared set-up of the PHP suites: a fresh gateway plugin and tables for every test, releases
 * built with ZipArchive and signed with sodium, the real control plane for rollouts and rows.
 *
 * @package Molam_Form_Tests
 */

use PHPUnit\Framework\TestCase;

/**
 * Base class: one behaviour per test method, against the real WordPress, MariaDB and Django.
 */
abstract class Molam_Form_TestCase extends TestCase {

	const SLUG = 'molam-gateway';

	const DAY = 86400;

	/**
	 * Release signing key pair (sodium), one per process.
	 *
	 * @var string|null
	 */
	protected static $keypair = null;

	/**
	 * Control-plane plugin name of this test (unique: tests never see each other's rollouts).
	 *
	 * @var string
	 */
	protected $plugin;

	/**
	 * Orders seeded before the test.
	 *
	 * @var array
	 */
	protected $orders_before;

	/**
	 * SHOW CREATE TABLE of the orders table before the test.
	 *
	 * @var string
	 */
	protected $schema_before;

	/**
	 * Fixture plugin directory in the repository.
	 *
	 * @return string
	 */
	protected static function fixture_dir() {
		return dirname( __DIR__ ) . '/fixtures/molam-gateway';
	}

	/**
	 * The live plugin directory.
	 *
	 * @return string
	 */
	protected static function live_dir() {
		return WP_PLUGIN_DIR . '/' . self::SLUG;
	}

	protected function setUp(): void {
		global $wpdb;
		parent::setUp();
		Molam_Form_Store::unlock();
		Molam_Form_Store::$journal = array();
		Molam_Form_Outbox::$base_delay_s = 0.01;
		if ( null === self::$keypair ) {
			self::$keypair = sodium_crypto_sign_keypair();
		}
		$this->plugin = 'woo-' . substr( bin2hex( random_bytes( 6 ) ), 0, 10 );
		Molam_Form_Store::remove_tree( self::live_dir() );
		self::copy_tree( self::fixture_dir(), self::live_dir() );
		Molam_Form_Store::remove_tree( WP_PLUGIN_DIR . '/.molam-agent/' . self::SLUG );
		foreach ( array( 'molam_orders', 'molam_refunds', 'molam_agent_migrations' ) as $t ) {
			$wpdb->query( "DROP TABLE IF EXISTS `{$wpdb->prefix}$t`" );
		}
		$wpdb->query( "DELETE FROM {$wpdb->options} WHERE option_name LIKE 'molam\\_gateway\\_%' OR option_name LIKE 'molam\\_form\\_%'" );
		wp_cache_flush();
		Molam_Payment_Gateway::install();
		for ( $i = 1; $i <= 40; $i++ ) {
			$wpdb->insert(
				$wpdb->prefix . 'molam_orders',
				array(
					'merchant_ref' => "ORD-$i",
					'amount_cents' => 1000 + $i * 37,
					'status'       => 0 === $i % 3 ? 'paid' : 'pending',
					'created_at'   => '2026-01-' . sprintf( '%02d', 1 + $i % 28 ) . ' 10:00:00',
				)
			);
		}
		$this->set_settings( array() );
		molam_form_activate();
		$this->orders_before = $this->orders();
		$this->schema_before = $this->schema();
	}

	protected function tearDown(): void {
		Molam_Form_Store::unlock();
		parent::tearDown();
	}

	/**
	 * Store settings for this test (defaults: the real control plane, the gateway fixture).
	 *
	 * @param array $overrides Values.
	 */
	protected function set_settings( $overrides ) {
		global $wpdb;
		remove_all_filters( 'sanitize_option_' . Molam_Form_Settings::OPTION );
		$settings = array_merge(
			Molam_Form_Settings::defaults(),
			array(
				'api_url'       => getenv( 'MOLAM_TEST_CP_URL' ),
				'merchant_id'   => getenv( 'MOLAM_TEST_MERCHANT' ),
				'token'         => getenv( 'MOLAM_TEST_PLUGIN_TOKEN' ),
				'public_key'    => base64_encode( sodium_crypto_sign_publickey( self::$keypair ) ),
				'plugin_name'   => $this->plugin,
				'plugin_slug'   => self::SLUG,
				'tables'        => $wpdb->prefix . 'molam_orders',
				'option_prefix' => 'molam_gateway_',
				'timeout_s'     => 10,
			),
			$overrides
		);
		update_option( Molam_Form_Settings::OPTION, $settings, false );
		wp_cache_flush();
	}

	/**
	 * A loopback `host:port` where nothing listens (a control plane or shop that is down).
	 *
	 * @return string
	 */
	protected static function dead_address() {
		$sock = stream_socket_server( 'tcp://127.0.0.1:0' );
		$name = stream_socket_get_name( $sock, false );
		fclose( $sock );
		return $name;
	}

	/**
	 * A control-plane URL where nothing listens.
	 *
	 * @return string
	 */
	protected static function dead_url() {
		return 'http://' . self::dead_address() . '/api/plugins/';
	}

	/**
	 * One WP-cron run of the plugin's job, through the hook WordPress fires.
	 */
	protected static function cron() {
		wp_cache_flush();
		do_action( MOLAM_FORM_CRON_HOOK );
		wp_cache_flush();
		clearstatcache();
	}

	/**
	 * Make the cron job's payment-health report see no new complete hour (runs about the rest).
	 */
	protected static function no_payment_hour_due() {
		update_option( Molam_Form_Payment_Health::LAST_HOUR, intdiv( time(), 3600 ) * 3600, false );
	}

	/**
	 * Queue a failed-upgrade report (the control plane records it in plugin_upgrade_logs).
	 *
	 * @param string      $key   Idempotency key.
	 * @param string|null $error Its error (default "report <key>").
	 * @return string The key.
	 */
	protected static function enqueue_failed_upgrade( $key, $error = null ) {
		return Molam_Form_Outbox::enqueue(
			'POST',
			'upgrades',
			array(
				'from_version' => '3.9.0',
				'to_version'   => '4.0.0',
				'status'       => 'failed',
				'error'        => $error ?? "report $key",
			),
			$key
		);
	}

	/**
	 * Copy a directory tree.
	 *
	 * @param string $from Source.
	 * @param string $to   Destination.
	 */
	protected static function copy_tree( $from, $to ) {
		mkdir( $to, 0755, true );
		foreach ( array_diff( scandir( $from ), array( '.', '..' ) ) as $entry ) {
			if ( is_dir( "$from/$entry" ) ) {
				self::copy_tree( "$from/$entry", "$to/$entry" );
			} else {
				copy( "$from/$entry", "$to/$entry" );
			}
		}
	}

	/**
	 * Every file of a tree: relative path => sha256 (symlinks as "link:<target>").
	 *
	 * @param string $dir Directory.
	 * @return array<string, string>
	 */
	protected static function tree( $dir ) {
		$out = array();
		if ( ! is_dir( $dir ) ) {
			return $out;
		}
		$it = new RecursiveIteratorIterator( new RecursiveDirectoryIterator( $dir, FilesystemIterator::SKIP_DOTS ), RecursiveIteratorIterator::SELF_FIRST );
		foreach ( $it as $file ) {
			$rel = substr( $file->getPathname(), strlen( $dir ) + 1 );
			if ( $file->isLink() ) {
				$out[ $rel ] = 'link:' . readlink( $file->getPathname() );
			} elseif ( $file->isFile() ) {
				$out[ $rel ] = hash_file( 'sha256', $file->getPathname() );
			}
		}
		ksort( $out );
		return $out;
	}

	/**
	 * The orders table, every row, every column, in id order.
	 *
	 * @param string[] $columns Columns (default all).
	 * @return array
	 */
	protected function orders( $columns = array() ) {
		global $wpdb;
		$cols = $columns ? implode( ', ', $columns ) : '*';
		return $wpdb->get_results( "SELECT $cols FROM {$wpdb->prefix}molam_orders ORDER BY id", ARRAY_A );
	}

	/**
	 * SHOW CREATE TABLE of a table, or null.
	 *
	 * @param string $table Table (without prefix).
	 * @return string|null
	 */
	protected function schema( $table = 'molam_orders' ) {
		global $wpdb;
		$suppress = $wpdb->suppress_errors( true );
		$row      = $wpdb->get_row( "SHOW CREATE TABLE {$wpdb->prefix}$table", ARRAY_N );
		$wpdb->suppress_errors( $suppress );
		return $row ? preg_replace( '/ AUTO_INCREMENT=\d+/', '', $row[1] ) : null;
	}

	/**
	 * The plugin's option rows, byte for byte.
	 *
	 * @return array
	 */
	protected function gateway_options() {
		global $wpdb;
		return $wpdb->get_results( "SELECT option_name, option_value, autoload FROM {$wpdb->options} WHERE option_name LIKE 'molam\\_gateway\\_%' ORDER BY option_name", ARRAY_A );
	}

	/**
	 * A release zip of the gateway at `$version`, in the WordPress style (one top folder),
	 * signed with the test key. Written under the WordPress root so `php -S` serves it.
	 *
	 * @param string $version Version.
	 * @param array  $opts    migrations, down (name => SQL), broken (smoke test fails), files (extra), name.
	 * @return array{path:string, url:string, sha256:string, signature:string, version:string, tree:array}
	 */
	protected function build_release( $version, $opts = array() ) {
		$name = ( $opts['name'] ?? "molam-gateway-$version" ) . '-' . bin2hex( random_bytes( 3 ) );
		$path = getenv( 'MOLAM_TEST_WP_DIR' ) . "/releases/$name.zip";
		$main = (string) file_get_contents( self::fixture_dir() . '/molam-gateway.php' );
		$main = preg_replace( '/^ \* Version: .*$/m', " * Version: $version", $main );
		if ( ! empty( $opts['broken'] ) ) {
			$main = str_replace( 'public static function self_test() {', "public static function self_test() {\n\t\treturn false;", $main );
		}
		$files = array();
		foreach ( array_keys( self::tree( self::fixture_dir() ) ) as $rel ) {
			$files[ $rel ] = (string) file_get_contents( self::fixture_dir() . "/$rel" );
		}
		$files['molam-gateway.php']        = $main;
		$files[ "CHANGELOG-$version.txt" ] = "Molam Gateway $version\n";
		$files['assets/checkout.js']      .= "/* $version */\n";
		foreach ( $opts['migrations'] ?? array() as $file => $sql ) {
			$files[ "migrations/$file" ] = $sql;
		}
		foreach ( $opts['down'] ?? array() as $file => $sql ) {
			$files[ "migrations/down/$file" ] = $sql;
		}
		$files = array_merge( $files, $opts['files'] ?? array() );
		$zip   = new ZipArchive();
		$zip->open( $path, ZipArchive::CREATE | ZipArchive::OVERWRITE );
		$zip->addEmptyDir( 'molam-gateway' );
		foreach ( $files as $rel => $content ) {
			$zip->addFromString( "molam-gateway/$rel", $content );
		}
		$zip->close();
		$bytes = (string) file_get_contents( $path );
		ksort( $files );
		return array(
			'path'      => $path,
			'url'       => getenv( 'MOLAM_TEST_WP_URL' ) . "/releases/$name.zip",
			'sha256'    => hash( 'sha256', $bytes ),
			'signature' => base64_encode( sodium_crypto_sign_detached( $bytes, sodium_crypto_sign_secretkey( self::$keypair ) ) ),
			'version'   => $version,
			'tree'      => array_map( fn( $c ) => hash( 'sha256', $c ), $files ),
		);
	}

	/**
	 * Register the release and start a rollout at `$percentage` through the ops API.
	 *
	 * @param array $release    Release.
	 * @param int   $percentage Percentage.
	 * @param array $override   Release fields to announce instead (wrong checksum, bad signature).
	 */
	protected function publish( $release, $percentage = 100, $override = array() ) {
		$reg = $this->ops(
			'POST',
			'releases',
			array_merge(
				array(
					'plugin_name'  => $this->plugin,
					'version'      => $release['version'],
					'download_url' => $release['url'],
					'sha256'       => $release['sha256'],
					'signature'    => $release['signature'],
				),
				$override
			)
		);
		$this->assertContains( $reg['status'], array( 200, 201 ), wp_json_encode( $reg ) );
		$roll = $this->ops(
			'POST',
			'rollouts',
			array(
				'plugin_name' => $this->plugin,
				'version'     => $release['version'],
				'percentage'  => $percentage,
				'strategy'    => 'random',
			)
		);
		$this->assertSame( 201, $roll['status'], wp_json_encode( $roll ) );
	}

	/**
	 * A request to the control plane with the ops credential (plain curl, not the code under test).
	 *
	 * @param string      $method Method.
	 * @param string      $path   API path.
	 * @param array|null  $body   Body.
	 * @param string|null $token  Credential (ops by default).
	 * @return array{status:int, body:mixed}
	 */
	protected function ops( $method, $path, $body = null, $token = null ) {
		$ch = curl_init( getenv( 'MOLAM_TEST_CP_URL' ) . $path );
		$headers = array( 'Authorization: Bearer ' . ( $token ?? getenv( 'MOLAM_TEST_OPS_TOKEN' ) ), 'Accept: application/json' );
		if ( null !== $body ) {
			$headers[] = 'Content-Type: application/json';
			curl_setopt( $ch, CURLOPT_POSTFIELDS, wp_json_encode( $body ) );
		}
		curl_setopt_array(
			$ch,
			array(
				CURLOPT_CUSTOMREQUEST  => $method,
				CURLOPT_HTTPHEADER     => $headers,
				CURLOPT_RETURNTRANSFER => true,
				CURLOPT_TIMEOUT        => 20,
			)
		);
		$raw    = curl_exec( $ch );
		$status = (int) curl_getinfo( $ch, CURLINFO_RESPONSE_CODE );
		curl_close( $ch );
		return array(
			'status' => $status,
			'body'   => json_decode( (string) $raw, true ),
		);
	}

	/**
	 * Run Python with the project's virtualenv (the agent's package), from the repository root.
	 *
	 * @param string $code  Python code.
	 * @param string $stdin Input.
	 * @return array{0:int, 1:string, 2:string} Exit status, stdout, stderr.
	 */
	public static function run_python( $code, $stdin = '' ) {
		$root = dirname( __DIR__, 3 );
		$proc = proc_open( array( "$root/.venv/bin/python", '-c', $code ), array( 0 => array( 'pipe', 'r' ), 1 => array( 'pipe', 'w' ), 2 => array( 'pipe', 'w' ) ), $pipes, $root );
		fwrite( $pipes[0], $stdin );
		fclose( $pipes[0] );
		$out = (string) stream_get_contents( $pipes[1] );
		$err = (string) stream_get_contents( $pipes[2] );
		fclose( $pipes[1] );
		fclose( $pipes[2] );
		return array( proc_close( $proc ), $out, $err );
	}

	/**
	 * Ops force a rollback of this test's plugin for the merchant.
	 *
	 * @param string $from From version.
	 * @param string $to   To version.
	 * @return string rollback_id
	 */
	protected function force_rollback( $from, $to ) {
		$answer = $this->ops(
			'POST',
			'rollback/initiate',
			array(
				'merchant_id'  => getenv( 'MOLAM_TEST_MERCHANT' ),
				'plugin_name'  => $this->plugin,
				'from_version' => $from,
				'to_version'   => $to,
				'trigger'      => 'operator_forced',
				'reason'       => 'Performance degradation reported',
			)
		);
		$this->assertSame( 201, $answer['status'], wp_json_encode( $answer ) );
		return $answer['body']['rollback_id'];
	}

	/**
	 * Rows of the control plane's own database (its SQLite file).
	 *
	 * @param string $sql    Query.
	 * @param array  $params Parameters.
	 * @return array
	 */
	protected function cp_rows( $sql, $params = array() ) {
		$pdo = new PDO( 'sqlite:' . getenv( 'MOLAM_TEST_CP_DB' ) );
		$pdo->setAttribute( PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION );
		$pdo->exec( 'PRAGMA busy_timeout = 5000' );
		$st = $pdo->prepare( $sql );
		$st->execute( $params );
		return $st->fetchAll( PDO::FETCH_ASSOC );
	}

	/**
	 * Upgrade reports the control plane recorded for this test's plugin.
	 *
	 * @return array
	 */
	protected function cp_upgrades() {
		return $this->cp_rows( 'SELECT * FROM plugin_upgrade_logs WHERE plugin_name = ? ORDER BY created_at', array( $this->plugin ) );
	}

	/**
	 * Rollbacks the control plane recorded for this test's plugin.
	 *
	 * @return array
	 */
	protected function cp_rollbacks() {
		return $this->cp_rows( 'SELECT * FROM plugin_rollback_history WHERE plugin_name = ? ORDER BY created_at', array( $this->plugin ) );
	}

	/**
	 * Run a `php` child (tests/php/bin/run-upgrade.php) and wait for it.
	 *
	 * @param string[] $args Arguments.
	 * @param array    $env  Extra environment.
	 * @return array{exit:int, signal:int, stdout:string, stderr:string, result:mixed}
	 */
	protected function child( $args = array(), $env = array() ) {
		$cmd  = array_merge( array( PHP_BINARY, dirname( __DIR__ ) . '/bin/run-upgrade.php' ), $args );
		$proc = proc_open( $cmd, array( 1 => array( 'pipe', 'w' ), 2 => array( 'pipe', 'w' ) ), $pipes, null, array_merge( getenv(), $env ) );
		$out  = stream_get_contents( $pipes[1] );
		$err  = stream_get_contents( $pipes[2] );
		fclose( $pipes[1] );
		fclose( $pipes[2] );
		$signal = 0;
		$exit   = -1;
		do {
			$st = proc_get_status( $proc );
			if ( ! $st['running'] ) {
				$signal = $st['signaled'] ? $st['termsig'] : 0;
				$exit   = $st['exitcode'];
				break;
			}
			usleep( 10000 );
		} while ( true );
		proc_close( $proc );
		wp_cache_flush();
		clearstatcache();
		return array(
			'exit'   => $exit,
			'signal' => $signal,
			'stdout' => (string) $out,
			'stderr' => (string) $err,
			'result' => json_decode( trim( (string) $out ), true ),
		);
	}

	/**
	 * One upgrade run in this process, as WP-cron would start it.
	 *
	 * @param bool $force Force.
	 * @return array
	 */
	protected function upgrade( $force = false ) {
		wp_cache_flush();
		$result = Molam_Form_Upgrade::safe_upgrade( (string) Molam_Form_Upgrade::installed_version(), $force );
		wp_cache_flush();
		return $result;
	}

	/**
	 * Assert the shop is on the fixture's 3.9.0, untouched: files, rows, option rows, no flag.
	 *
	 * @param string $why Message.
	 */
	protected function assertWhollyOld( $why = '' ) {
		$this->assertSame( self::tree( self::fixture_dir() ), self::tree( self::live_dir() ), "files are 3.9.0 byte for byte $why" );
		$this->assertSame( $this->orders_before, $this->orders(), "orders unchanged $why" );
		$this->assertSame( $this->schema_before, $this->schema(), "orders schema unchanged $why" );
		$this->assertNull( molam_form_in_maintenance(), "checkout open $why" );
	}
}
